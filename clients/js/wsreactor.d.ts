/** The transports, best first. */
export type Transport = "websocket" | "sse" | "longpoll" | "poll";

export interface Options {
  /** Transports to try, best first (default all four). */
  transports?: Transport[];
  /** Reconnect backoff: full jitter, from minDelay doubling to maxDelay (ms). */
  minDelay?: number;
  maxDelay?: number;
  /** A transport that does not open within this (ms) is passed over. */
  openTimeout?: number;
  /** Short polling's interval (ms). */
  pollInterval?: number;
  /** On a lower transport, try the best again after this (ms). */
  upgradeAfter?: number;
  /** A WebSocket class where the platform has none (Node before 22: the `ws` package's). */
  WebSocket?: unknown;
  /** A fetch function (default the platform's). */
  fetch?: typeof fetch;
  /** Pause while the page is hidden (default false); offline always pauses. */
  pauseHidden?: boolean;
  /** Where online/offline events come from (default the page's window). */
  window?: EventTarget;
  /** Where visibilitychange comes from (default the page's document). */
  document?: EventTarget & { visibilityState?: string };
  /** Gives a token (a JWT): asked before connecting, before it expires, and after a 401 or 403. */
  token?: () => Promise<string>;
}

export interface MessageEvent {
  channel: string;
  id: number;
  /** The message's data: text as published (binary as base64 with its `encoding`). */
  data: unknown;
}

export interface GapEvent {
  channel: string;
  from: number;
  to: number;
  reset?: boolean;
}

export interface PresenceEvent {
  channel: string;
  member: { client: string; user?: string; info?: unknown };
}

export interface StateEvent {
  state: "idle" | "connecting" | "open" | "reconnecting" | "paused" | "closed";
  transport: Transport | null;
}

export interface Events {
  message: MessageEvent;
  gap: GapEvent;
  reset: GapEvent;
  join: PresenceEvent;
  leave: PresenceEvent;
  state: StateEvent;
  error: { channel?: string; error: string };
}

export class Client {
  constructor(url: string, options?: Options);
  /** The transport in use, once open. */
  readonly transport: Transport | null;
  readonly state: StateEvent["state"];
  on<K extends keyof Events>(event: K, fn: (e: Events[K]) => void): this;
  /** Subscribe to a channel, after message `since` if given; with `joinLeave`, its presence's join and leave events too. */
  subscribe(channel: string, since?: number | null, options?: { joinLeave?: boolean }): { unsubscribe(): void };
  unsubscribe(channel: string): void;
  /** The last id given of a channel: its cursor. */
  cursor(channel: string): number | null;
  /** Publish over the WebSocket (a token with the pub scope): the message's id. */
  publish(channel: string, data: unknown, token?: string): Promise<number>;
  /** A subscribed channel's members, or with `stats` their counts (over the WebSocket). */
  presence(channel: string, stats?: boolean): Promise<unknown>;
  /** Stop everything. */
  close(): void;
}

// wsreactor's JavaScript client: subscribe to channels of a wsreactor push
// server over the best transport that works (WebSocket with the
// wsreactor.mux subprotocol, else Server-Sent Events, else long polling,
// else short polling), with one cursor per channel carried across every
// switch and reconnect, so that no message is lost or given twice.
// No runtime dependencies: browsers, and Node 18+ (its fetch; a WebSocket
// class passed in where Node has none).

const TRANSPORTS = ["websocket", "sse", "longpoll", "poll"];

/** An answer that refuses: its status, and when to ask again (seconds). */
class Refused extends Error {
  constructor(res) {
    super(`${res.status} from the server`);
    this.status = res.status;
    this.retryAfter = Number(res.headers.get("Retry-After")) || 0;
  }
}

/** A JWT's `exp` (seconds), if it has one. */
function expiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).exp || null;
  } catch {
    return null;
  }
}

/** A client of one server. */
export class Client {
  /**
   * @param {string} url the server, http(s)://host:port
   * @param {object} [options]
   */
  constructor(url, options = {}) {
    this.url = url.replace(/\/+$/, "");
    this.o = {
      transports: TRANSPORTS,
      minDelay: 250,
      maxDelay: 15000,
      openTimeout: 5000,
      pollInterval: 1000,
      upgradeAfter: 60000,
      // An async function giving a token (a JWT): asked before connecting,
      // before the token expires, and after a 401 or 403.
      token: null,
      // Pause while the page is hidden (its visibilitychange).
      pauseHidden: false,
      // Where `online`/`offline` and `visibilitychange` come from.
      window: globalThis.window,
      document: globalThis.document,
      ...options,
    };
    this.tok = null;
    this.paused = false;
    this.watch();
    this.WS = this.o.WebSocket || globalThis.WebSocket;
    this.fetch = this.o.fetch || globalThis.fetch.bind(globalThis);
    this.channels = new Map(); // name -> { last: id or null, handlers }
    this.handlers = {};
    this.transport = null;
    this.state = "idle";
    this.tries = 0;
    this.level = 0; // index into transports of the one in use or tried
    this.closed = false;
    this.conn = null; // the transport's connection: { close(), send?() }
    this.nextId = 1;
    this.waiting = new Map(); // mux command id -> { resolve, reject }
  }

  /** Offline (or hidden, if asked): every connection closed and no
   * reconnect tried until back, then at once. */
  watch() {
    const { window: win, document: doc } = this.o;
    const pause = (paused) => {
      if (this.closed || paused === this.paused) return;
      this.paused = paused;
      this.tries = 0;
      clearTimeout(this.timer);
      this.drop();
      if (paused) this.setState("paused", null);
      else this.restart();
    };
    this.unwatch = [];
    const listen = (target, event, fn) => {
      target?.addEventListener?.(event, fn);
      this.unwatch.push(() => target?.removeEventListener?.(event, fn));
    };
    listen(win, "offline", () => pause(true));
    listen(win, "online", () => pause(false));
    if (this.o.pauseHidden) listen(doc, "visibilitychange", () => pause(doc.visibilityState === "hidden"));
  }

  /** Listen for `event`: state, message, gap, reset, join, leave, error. */
  on(event, fn) {
    (this.handlers[event] ||= []).push(fn);
    return this;
  }

  emit(event, arg) {
    for (const fn of this.handlers[event] || []) fn(arg);
  }

  /** Subscribe to `channel`, from after message `since` if given; with
   * `joinLeave`, its presence's join and leave events too. */
  subscribe(channel, since = null, { joinLeave = false } = {}) {
    if (!this.channels.has(channel)) {
      this.channels.set(channel, { last: since, joinLeave });
      this.restart();
    }
    return { unsubscribe: () => this.unsubscribe(channel) };
  }

  unsubscribe(channel) {
    if (this.channels.delete(channel)) this.restart();
  }

  /** The last id given of `channel` (its cursor). */
  cursor(channel) {
    return this.channels.get(channel)?.last ?? null;
  }

  /** Stop everything. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.renew);
    for (const off of this.unwatch) off();
    this.drop();
    this.setState("closed", null);
  }

  setState(state, transport) {
    this.state = state;
    this.transport = transport;
    this.emit("state", { state, transport });
  }

  /** A message of a channel, given once: ids at or below its cursor are skipped. */
  deliver(channel, id, data) {
    const c = this.channels.get(channel);
    if (!c || (c.last !== null && id <= c.last)) return;
    c.last = id;
    this.healthy();
    this.emit("message", { channel, id, data });
  }

  /** The server's cursor for every channel (`a=5,b=7`): a channel the
   * client had no place in yet starts there, so that what comes between
   * two requests is not lost. */
  adopt(cursor) {
    for (const part of (cursor || "").split(",")) {
      const i = part.lastIndexOf("=");
      const c = this.channels.get(part.slice(0, i));
      const id = Number(part.slice(i + 1));
      if (c && i > 0 && Number.isSafeInteger(id) && (c.last === null || id > c.last)) c.last = id;
    }
  }

  gap(channel, gap) {
    const c = this.channels.get(channel);
    if (!c) return;
    if (gap.reset) {
      // The server cannot vouch for the cursor: dropped, and said so.
      c.last = null;
      this.emit("reset", { channel, ...gap });
    } else {
      this.emit("gap", { channel, ...gap });
    }
  }

  event(v) {
    if (!this.channels.get(v.channel)?.joinLeave) return;
    for (const change of ["join", "leave"]) {
      if (v[change]) this.emit(change, { channel: v.channel, member: v[change] });
    }
  }

  /** The transport delivers: backoff starts over. */
  healthy() {
    this.tries = 0;
  }

  drop() {
    const conn = this.conn;
    this.conn = null;
    clearTimeout(conn?.upgrade);
    for (const w of this.waiting.values()) w.reject(new Error("connection closed"));
    this.waiting.clear();
    if (conn) conn.close();
  }

  restart() {
    if (this.closed || this.paused) return;
    clearTimeout(this.timer);
    this.drop();
    if (this.channels.size) this.timer = setTimeout(() => this.connect(), 0);
  }

  /** The transport in use failed (`down`: it did not work at all, so the
   * next one down is tried): a new attempt after a backoff with full
   * jitter (a random wait up to min(max, min * 2^tries)), or after the
   * server's Retry-After. A 401 or 403 asks for a new token, or without a
   * token function stops the client: trying again would be refused again. */
  failed(down, error) {
    if (this.closed || this.paused) return;
    this.drop();
    const status = error?.status;
    if (status === 401 || status === 403) {
      if (!this.o.token) {
        this.emit("error", { error: `refused: ${error.message}` });
        return this.close();
      }
      this.tok = null;
    } else if (down && !error?.retryAfter && this.level < this.o.transports.length - 1) {
      this.level++;
    } else {
      this.tries++;
    }
    const cap = Math.min(this.o.maxDelay, this.o.minDelay * 2 ** this.tries);
    const wait = error?.retryAfter ? error.retryAfter * 1000 : Math.random() * cap;
    this.setState("reconnecting", null);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  /** A token if the client has a token function: a fresh one when it has
   * none, and a refresh scheduled before its expiry. */
  async token() {
    if (!this.o.token || this.tok) return;
    this.tok = await this.o.token();
    const exp = expiry(this.tok);
    clearTimeout(this.renew);
    if (exp) {
      const left = exp * 1000 - Date.now();
      this.renew = setTimeout(() => this.refresh(), Math.max(1000, left - Math.min(30000, left / 5)));
    }
  }

  /** The token is about to expire: a new one, sent over the WebSocket
   * (`refresh`), or a reconnect with it (the cursors lose nothing). */
  async refresh() {
    if (this.closed) return;
    this.tok = null;
    try {
      await this.token();
      if (this.conn?.send) await this.call({ refresh: this.tok });
      else this.restart();
    } catch (e) {
      this.emit("error", { error: `token refresh: ${e.message}` });
      this.restart();
    }
  }

  async connect() {
    if (this.closed || this.paused || !this.channels.size) return;
    // A later connect (a restart meanwhile) supersedes this one.
    const gen = (this.gen = (this.gen || 0) + 1);
    try {
      await this.token();
    } catch (e) {
      this.emit("error", { error: `token: ${e.message}` });
      return this.failed(false);
    }
    if (this.closed || gen !== this.gen) return;
    const transport = this.o.transports[this.level];
    if (transport === "websocket" && !this.WS) return this.failed(true);
    this.setState("connecting", transport);
    const conn = (this.conn = { close() {} });
    const opened = () => {
      if (this.conn !== conn) return;
      this.setState("open", transport);
      // Lower than the best: try upward again later.
      if (this.level > 0) {
        conn.upgrade = setTimeout(() => {
          if (this.conn === conn) {
            this.level = 0;
            this.restart();
          }
        }, this.o.upgradeAfter);
      }
    };
    const lost = (down, error) => {
      if (this.conn === conn) {
        clearTimeout(conn.upgrade);
        this.failed(down, error);
      }
    };
    const run = { websocket: this.websocket, sse: this.sse, longpoll: this.poll, poll: this.poll }[transport];
    run.call(this, conn, opened, lost, transport === "poll");
  }

  since() {
    return [...this.channels].filter(([, c]) => c.last !== null).map(([n, c]) => `${n}=${c.last}`).join(",");
  }

  query() {
    const q = [...this.channels.keys()].map((n) => "channel=" + encodeURIComponent(n));
    const since = this.since();
    if (since) q.push("since=" + encodeURIComponent(since));
    if (this.tok) q.push("token=" + encodeURIComponent(this.tok));
    if ([...this.channels.values()].some((c) => c.joinLeave)) q.push("join_leave=1");
    return q.join("&");
  }

  /** Several channels on one WebSocket: wsreactor.mux at /ws. */
  websocket(conn, opened, lost) {
    const token = this.tok ? "?token=" + encodeURIComponent(this.tok) : "";
    const ws = new this.WS(this.url.replace(/^http/, "ws") + "/ws" + token, "wsreactor.mux");
    let open = false;
    const timer = setTimeout(() => lost(true), this.o.openTimeout);
    conn.close = () => {
      clearTimeout(timer);
      ws.onclose = ws.onmessage = null;
      try {
        ws.close(1000);
      } catch {}
    };
    conn.send = (command) => ws.send(JSON.stringify(command));
    ws.onopen = () => {
      let out = this.channels.size;
      for (const [channel, c] of this.channels) {
        const command = { subscribe: channel };
        if (c.last !== null) command.since = c.last;
        if (c.joinLeave) command.join_leave = true;
        this.call(command).then(
          (reply) => {
            // Subscribed with no cursor: the reply gives the one to resume from.
            if (c.last === null && typeof reply.last_id === "number") c.last = reply.last_id;
            // Open once every subscribe is answered: a proxy that lets the
            // upgrade through and then holds everything is found by the timer.
            if (--out === 0 && this.conn === conn) {
              clearTimeout(timer);
              open = true;
              this.healthy();
              opened();
            }
          },
          (e) => this.emit("error", { channel, error: e.message })
        );
      }
    };
    ws.onmessage = (e) => {
      const v = JSON.parse(e.data);
      if ("reply" in v) {
        const w = this.waiting.get(v.reply);
        this.waiting.delete(v.reply);
        if (w) v.ok ? w.resolve(v) : w.reject(new Error(v.error));
      } else if (v.gap) this.gap(v.channel, v.gap);
      else if ("id" in v) this.deliver(v.channel, v.id, v.data);
      else this.event(v);
    };
    ws.onclose = () => lost(!open);
  }

  /** Send a mux command and wait for its reply (WebSocket only). */
  call(command) {
    const conn = this.conn;
    if (!conn?.send) return Promise.reject(new Error("not on a WebSocket"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      conn.send({ id, ...command });
    });
  }

  /** Publish `data` (JSON) to `channel` over the WebSocket: its id. */
  async publish(channel, data, token) {
    return (await this.call({ publish: channel, data, ...(token ? { token } : {}) })).message_id;
  }

  /** A subscribed channel's members, or with `stats` their count. */
  presence(channel, stats = false) {
    return this.call({ [stats ? "presence_stats" : "presence"]: channel });
  }

  /** One event stream of every channel: /sse?channel=..&since=a=5,b=7,
   * read from a fetch stream (the cursor is the client's own). */
  sse(conn, opened, lost) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.o.openTimeout);
    conn.close = () => {
      clearTimeout(timer);
      abort.abort();
    };
    let open = false;
    (async () => {
      const res = await this.fetch(`${this.url}/sse?${this.query()}`, {
        headers: { Accept: "text/event-stream" },
        signal: abort.signal,
      });
      if (!res.ok) throw new Refused(res);
      const reader = res.body.getReader();
      const text = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (!open) {
          // Open once bytes come (the stream starts with every channel's
          // place): a proxy that holds the stream back is passed over.
          clearTimeout(timer);
          open = true;
          opened();
        }
        buf += text.decode(value, { stream: true });
        let end;
        while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
          this.sseEvent(buf.slice(0, end));
          buf = buf.slice(end).replace(/^\r?\n\r?\n/, "");
        }
      }
    })().then(
      () => lost(false),
      (e) => lost(!open, e instanceof Refused ? e : null)
    );
  }

  sseEvent(block) {
    let event = "message";
    let data = "";
    let id = null;
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
      else if (line.startsWith("id:")) id = line.slice(3).trim();
    }
    if (data) {
      const v = JSON.parse(data);
      if (event === "gap") this.gap(v.channel, v.gap);
      else if (event === "join" || event === "leave") this.event(v);
      else if (event === "message") this.deliver(v.channel, v.id, v.data);
    }
    // An id alone (the stream's start) is every channel's place.
    if (id !== null) this.adopt(id);
  }

  /** Long polling (or, `short`, polls that answer at once, every
   * pollInterval): /poll?channel=..&since=a=5,b=7. */
  poll(conn, opened, lost, short) {
    let stopped = false;
    let abort = null;
    conn.close = () => {
      stopped = true;
      abort?.abort();
    };
    let first = true;
    (async () => {
      while (!stopped) {
        abort = new AbortController();
        const res = await this.fetch(`${this.url}/poll?${this.query()}${short ? "&wait=0" : ""}`, {
          signal: abort.signal,
          cache: "no-store",
        });
        if (res.status !== 200 && res.status !== 204) throw new Refused(res);
        if (first) {
          first = false;
          opened();
        }
        if (res.status === 200) {
          const v = await res.json();
          for (const g of v.gaps || []) this.gap(g.channel, g.gap);
          for (const m of v.messages) this.deliver(m.channel, m.id, m.data);
          for (const e of v.events || []) this.event(e);
          this.adopt(v.cursor);
        } else {
          this.adopt(res.headers.get("X-Cursor"));
        }
        if (short && !stopped) await new Promise((r) => setTimeout(r, this.o.pollInterval));
      }
    })().catch((e) => lost(first, e instanceof Refused ? e : null));
  }
}

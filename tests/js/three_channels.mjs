// The JavaScript client under Node, against a running server (its address
// the first argument): subscribed to 3 channels, every message published
// to each arrives once and in order, across a switch from one transport
// to another and a reconnect. Node has no WebSocket before v22: the client
// finds out and falls back to Server-Sent Events. Exits 0 with "ok".
import { Client } from "../../clients/js/wsreactor.js";

const base = "http://" + process.argv[2];
const channels = ["a", "b:1", "c"];
const fail = (why) => {
  console.error("FAIL: " + why);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 30000).unref();

async function publish(channel, text) {
  const res = await fetch(`${base}/pub/${encodeURIComponent(channel)}`, {
    method: "POST",
    headers: { "Content-Type": "text/plain" },
    body: text,
  });
  if (res.status !== 200) fail(`publish ${channel}: ${res.status}`);
}

// The page's online and offline events, made here.
const client = new Client(base, {
  minDelay: 10,
  maxDelay: 50,
  openTimeout: 2000,
  pollInterval: 50,
  window: new EventTarget(),
});
const got = new Map(channels.map((c) => [c, []]));
const transports = [];
client.on("state", (s) => {
  if (s.state === "open") transports.push(s.transport);
});
client.on("message", (m) => got.get(m.channel).push(m.data));
client.on("gap", (g) => fail("gap " + JSON.stringify(g)));
client.on("reset", (g) => fail("reset " + JSON.stringify(g)));
for (const c of channels) client.subscribe(c);

const until = async (what, ok) => {
  const end = Date.now() + 10000;
  while (!ok()) {
    if (Date.now() > end) fail("waiting for " + what + ": " + JSON.stringify([...got]));
    await new Promise((r) => setTimeout(r, 10));
  }
};
const round = async (from, to) => {
  for (let i = from; i < to; i++) for (const c of channels) await publish(c, `${c}${i}`);
  await until(`${to} of each`, () => channels.every((c) => got.get(c).length >= to));
};

await until("open", () => transports.length > 0);
await round(0, 10);
// Published while the client switches to long polling: none lost.
client.level = client.o.transports.indexOf("longpoll");
client.restart();
await round(10, 20);
await until("long polling", () => transports.at(-1) === "longpoll");
// And while it reconnects on it.
client.restart();
await round(20, 25);
// Offline: closed, and what is published meanwhile comes once back online.
const net = client.o.window;
net.dispatchEvent(new Event("offline"));
if (client.state !== "paused") fail("offline: " + client.state);
for (let i = 25; i < 30; i++) for (const c of channels) await publish(c, `${c}${i}`);
await new Promise((r) => setTimeout(r, 200));
if (client.state !== "paused") fail("reconnected while offline: " + client.state);
net.dispatchEvent(new Event("online"));
await round(30, 30);
await until("all 30", () => channels.every((c) => got.get(c).length >= 30));
// Short polling too.
client.level = client.o.transports.indexOf("poll");
client.restart();
await round(30, 40);
await until("short polling", () => transports.at(-1) === "poll");
for (const c of channels) {
  const want = Array.from({ length: 40 }, (_, i) => `${c}${i}`);
  if (JSON.stringify(got.get(c)) !== JSON.stringify(want)) fail(`${c}: ${JSON.stringify(got.get(c))}`);
}
client.close();

// A 429 with Retry-After: 1 is waited out, not retried on the backoff.
const asked = [];
const busy = async (...args) => {
  asked.push(Date.now());
  if (asked.length === 1) return new Response("", { status: 429, headers: { "Retry-After": "1" } });
  return fetch(...args);
};
const patient = new Client(base, { fetch: busy, minDelay: 10, maxDelay: 20, transports: ["sse"] });
const patientGot = [];
patient.on("message", (m) => patientGot.push(m.data));
patient.subscribe("a", 40); // ids from 1: "a39" is id 40
await until("a second ask", () => asked.length >= 2);
if (asked[1] - asked[0] < 950) fail(`asked again after ${asked[1] - asked[0]} ms`);
await publish("a", "a40");
await until("after the wait", () => patientGot.length === 1);
if (patientGot[0] !== "a40") fail("patient got " + JSON.stringify(patientGot));
patient.close();
console.log(`ok ${transports.join(",")}`);

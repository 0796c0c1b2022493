// The client's tokens under Node, against a server whose token secret is
// the second argument: a token function is asked again before each token
// expires, and nothing is lost across the renewals; without one, a
// refused subscribe stops the client with an error, not a reconnect loop.
// Exits 0 with "ok".
import { createHmac } from "node:crypto";
import { Client } from "../../clients/js/wsreactor.js";

const base = "http://" + process.argv[2];
const secret = process.argv[3];
const fail = (why) => {
  console.error("FAIL: " + why);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 30000).unref();

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
function jwt(claims) {
  const signed = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
  return signed + "." + createHmac("sha256", secret).update(signed).digest("base64url");
}

async function publish(channel, text) {
  const res = await fetch(`${base}/pub/${channel}`, { method: "POST", headers: { "Content-Type": "text/plain" }, body: text });
  if (res.status !== 200) fail(`publish ${channel}: ${res.status}`);
}

// Tokens of 3 s: over 7 s of publishing, each is renewed before it ends.
let issued = 0;
const client = new Client(base, {
  minDelay: 10,
  maxDelay: 50,
  token: async () => {
    issued++;
    return jwt({ exp: Math.floor(Date.now() / 1000) + 3, channels: ["private-*"], sub: "ann" });
  },
});
const got = [];
const errors = [];
client.on("message", (m) => got.push(m.data));
client.on("error", (e) => errors.push(e.error));
client.subscribe("private-a");
let opened = false;
client.on("state", (s) => (opened ||= s.state === "open"));
const end = Date.now() + 10000;
while (!opened) {
  if (Date.now() > end) fail("never opened");
  await new Promise((r) => setTimeout(r, 10));
}
for (let i = 0; i < 35; i++) {
  await publish("private-a", `m${i}`);
  await new Promise((r) => setTimeout(r, 200));
}
const want = Array.from({ length: 35 }, (_, i) => `m${i}`);
const deadline = Date.now() + 5000;
while (got.length < 35 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
if (JSON.stringify(got) !== JSON.stringify(want)) fail("got " + JSON.stringify(got));
if (issued < 3) fail(`tokens issued: ${issued}`);
if (errors.length) fail("errors: " + errors);
client.close();

// No token function, a private channel: refused, stopped, told.
let asked = 0;
const counting = (...args) => {
  asked++;
  return fetch(...args);
};
const refused = new Client(base, { fetch: counting, minDelay: 10, maxDelay: 20, transports: ["sse", "longpoll"] });
const said = [];
refused.on("error", (e) => said.push(e.error));
refused.subscribe("private-b");
await new Promise((r) => setTimeout(r, 1000));
if (refused.state !== "closed") fail("still " + refused.state);
if (asked !== 1) fail(`asked ${asked} times`);
if (!said.length || !said[0].includes("403")) fail("said " + JSON.stringify(said));
console.log(`ok ${issued} tokens`);

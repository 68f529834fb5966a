// Node tests of the client (clients/js/src/mtbridge.js): pure helpers, then auth, requests,
// recovery across a hub restart, reconnect rules and token refresh against a live hub subprocess,
// in both encodings (JSON and MessagePack), with the `ws` package; and the cases only a scripted
// server can produce (silence, the reconnect hint, an unanswered handshake).
//
// Run: MTBRIDGE_BIN=.venv/bin/mtbridge node --test clients/js/test/ (tests/jsclient/test_node.py
// does this from pytest). No timing assertions: every wait is a generous deadline on a condition.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import path from "node:path";
import WebSocket, { WebSocketServer } from "ws";

import {
  MTBridgeClient,
  MTBridgeError,
  State,
  backoffDelay,
  isReconnect,
  loadCodec,
  jsonCodec,
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
} from "../src/mtbridge.js";
import { msgpackCodec } from "../src/msgpack.js";
import { ENCODINGS, HubProcess, ROOT, fakeHub, freePort, signal, waitFor } from "./helpers.mjs";

// A WebSocket class whose connections fail (like a refused TCP connect) while `gate.open` is false:
// lets a test publish while a client is provably disconnected, without racing its backoff.
function gatedWebSocket(gate) {
  return class GatedWebSocket extends WebSocket {
    constructor(url, protocols, options) {
      super(gate.open ? url : `ws://127.0.0.1:${gate.closedPort}/ws`, protocols, options);
    }
  };
}

let hub;
let dataDir;
let adminToken;
let engineToken;
let dashToken;

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), "mtb-js-"));
  hub = new HubProcess(dataDir, await freePort());
  await hub.start();
  adminToken = hub.token("admin", "ops", "--account", "*");
  engineToken = hub.token("engine", "engine-js", "--publish", "signals:*", "--subscribe", "signals:*");
  dashToken = hub.token("dashboard", "wall", "--account", "*");
});

after(async () => {
  await hub.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

// -- pure helpers -------------------------------------------------------------------------------

test("isReconnect agrees with codes.json (generated from bridge/protocol/codes.py)", () => {
  const codes = JSON.parse(readFileSync(path.join(ROOT, "bridge/dashboard/static/codes.json"), "utf8"));
  for (const [code, entry] of Object.entries(codes.closeCodes)) {
    assert.equal(isReconnect(Number(code)), entry.reconnect, `close code ${code}`);
  }
  const [r0, r1] = codes.reconnectRange;
  const [t0, t1] = codes.terminalRange;
  for (const c of [r0, r1, 1006, 1011, 4100]) assert.equal(isReconnect(c), true, `code ${c}`);
  for (const c of [t0, t1, 4600]) assert.equal(isReconnect(c), false, `code ${c}`);
});

test("backoffDelay is full jitter under a capped exponential ceiling", () => {
  assert.equal(backoffDelay(0, { random: () => 0 }), 0);
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** attempt);
    const top = backoffDelay(attempt, { random: () => 0.999999 });
    assert.ok(top < ceiling && top >= ceiling - 1, `attempt ${attempt}: ${top} vs ${ceiling}`);
  }
  assert.ok(backoffDelay(100) < BACKOFF_MAX_MS);
});

test("the constructor refuses to run without a WebSocket implementation", () => {
  assert.throws(() => new MTBridgeClient("ws://x/ws", { token: "t", WebSocket: null, webSocketOptions: {} }), TypeError);
});

test("the constructor refuses an unknown encoding and an incomplete codec", () => {
  assert.throws(() => new MTBridgeClient("ws://x/ws", { token: "t", WebSocket, encoding: "cbor" }), TypeError);
  assert.throws(() => new MTBridgeClient("ws://x/ws", { token: "t", WebSocket, codec: { protocol: "x" } }), TypeError);
  const c = new MTBridgeClient("ws://x/ws", { token: "t", WebSocket, codec: msgpackCodec });
  assert.equal(c.encoding, "msgpack");
  assert.equal(c.protocol, "mtbridge.v1.msgpack");
  assert.equal(new MTBridgeClient("ws://x/ws", { token: "t", WebSocket }).protocol, "mtbridge.v1.json");
});

test("the MessagePack codec round-trips envelopes, leaves undefined out and keeps 64-bit offsets", async () => {
  assert.equal(await loadCodec("msgpack"), msgpackCodec, "the lazy import gives the same codec object");
  assert.equal(await loadCodec("json"), jsonCodec);
  await assert.rejects(loadCodec("xml"), TypeError);
  const env = { type: "message", channel: "signals:a", offset: 2 ** 40 + 3, payload: { v: 0.1, n: null, s: "é", a: [1, true] } };
  const frame = msgpackCodec.encode(env);
  assert.ok(frame instanceof Uint8Array);
  assert.deepEqual(msgpackCodec.decode(frame), env);
  assert.deepEqual(msgpackCodec.decode(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength)), env);
  assert.deepEqual(msgpackCodec.decode(msgpackCodec.encode({ type: "subscribe", payload: { since: undefined } })), {
    type: "subscribe",
    payload: {},
  });
  assert.throws(() => msgpackCodec.decode("{}"), TypeError);
});

test("every runtime export is declared in mtbridge.d.ts and msgpack.d.ts", async () => {
  for (const [mod, dts] of [
    ["../src/mtbridge.js", "../src/mtbridge.d.ts"],
    ["../src/msgpack.js", "../src/msgpack.d.ts"],
  ]) {
    const names = Object.keys(await import(mod)).sort();
    const text = readFileSync(new URL(dts, import.meta.url), "utf8");
    const declared = [...text.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(declared, names, `${dts} against ${mod}`);
  }
});

// -- against a live hub, in both encodings ------------------------------------------------------

for (const encoding of ENCODINGS) {
  test(`[${encoding}] auth in the first message, request promises, error replies and heartbeat`, async () => {
    const client = new MTBridgeClient(hub.wsUrl, { token: dashToken, WebSocket, encoding });
    const states = [];
    client.on("state", ({ state }) => states.push(state));
    try {
      const auth = await client.connect();
      assert.equal(auth.sub, "wall");
      assert.equal(auth.role, "dashboard");
      assert.equal(client.state, State.OPEN);
      assert.deepEqual(states, [State.CONNECTING, State.AUTHENTICATING, State.OPEN]);
      assert.equal(client.welcome.protocol, "mtbridge.v1");
      assert.equal(client.welcome.encoding, encoding, "the hub negotiated the encoding asked for");
      const conns = await hub.rest("GET", "/api/v1/connections", adminToken);
      assert.equal(conns.body.items.find((c) => c.id === client.connectionId).encoding, encoding);
      const hb = await client.heartbeat();
      assert.equal(typeof hb.ts, "number");
      await assert.rejects(client.subscribe("nonsense", () => {}), (err) => {
        assert.ok(err instanceof MTBridgeError);
        assert.equal(err.code, "invalid_channel");
        return true;
      });
      await assert.rejects(client.publish("system:health", { x: 1 }), (err) => err.code === "forbidden");
    } finally {
      client.close();
    }
    assert.equal(client.state, State.CLOSED);
  });

  test(`[${encoding}] publish, subscribe from an offset, ack and a trade event round trip`, async () => {
    const strategy = `jsrt${encoding}`;
    const channel = `signals:${strategy}`;
    const ea = hub.token("ea", `ea-rt-${encoding}`, "--account", "50123", "--subscribe", "signals:*");
    const engine = new MTBridgeClient(hub.wsUrl, { token: engineToken, WebSocket, encoding });
    const eaClient = new MTBridgeClient(hub.wsUrl, { token: ea, WebSocket, encoding });
    const statuses = [];
    engine.on("signal.status", (s) => statuses.push(s));
    try {
      await Promise.all([engine.connect(), eaClient.connect()]);
      const early = signal(strategy);
      const p1 = await engine.publish(channel, early);
      assert.equal(p1.offset, 1);
      assert.equal(p1.duplicate, false);
      const got = [];
      const r = await eaClient.subscribe(channel, (payload, meta) => got.push({ payload, meta }), { since: 0 });
      assert.equal(r.recovered, true);
      const live = { ...signal(strategy), sl: 1.07, tp: 1.09, comment: "naïve – ünïcode" };
      await engine.publish(channel, live);
      await waitFor(() => got.length === 2, "the replayed and the live signal");
      assert.deepEqual(got.map((g) => g.meta.offset), [1, 2]);
      assert.equal(got[1].payload.id, live.id);
      assert.equal(got[1].payload.sl, 1.07);
      assert.equal(got[1].payload.comment, live.comment);
      assert.equal(typeof got[1].payload.expiresAt, "number");
      const ack = await eaClient.ack(live.id, "50123");
      assert.equal(ack.status, "acked");
      const ev = await eaClient.tradeEvent({
        id: crypto.randomUUID(),
        kind: "deal",
        account: "50123",
        ts: Date.now(),
        signalId: live.id,
        ticket: 991,
        symbol: "EURUSD",
        side: "buy",
        entry: "in",
        volume: 0.1,
        price: 1.0801,
      });
      assert.equal(ev.duplicate, false);
      await waitFor(() => statuses.some((s) => s.signalId === live.id && s.status === "executed"), "executed status push");
      assert.equal(got.length, 2, "nothing delivered twice");
    } finally {
      engine.close();
      eaClient.close();
    }
  });

  test(`[${encoding}] subscribe, unsubscribe and subscribe again at once (React StrictMode) ends subscribed once`, async () => {
    const strategy = `jsstrict${encoding}`;
    const channel = `signals:${strategy}`;
    for (let i = 0; i < 3; i += 1) {
      const r = await hub.rest("POST", "/api/v1/signals", engineToken, signal(strategy));
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const client = new MTBridgeClient(hub.wsUrl, { token: dashToken, WebSocket, encoding });
    const first = [];
    const second = [];
    try {
      await client.connect();
      // No await in between: all three requests are on the wire before any answer.
      const p1 = client.subscribe(channel, (payload) => first.push(payload.id), { since: 0 });
      const u1 = client.unsubscribe(channel);
      const p2 = client.subscribe(channel, (payload, meta) => second.push(meta.offset), { since: 0 });
      await assert.rejects(p1, (err) => err.code === "unsubscribed");
      assert.deepEqual(await u1, {});
      const r2 = await p2;
      assert.equal(r2.recovered, true);
      await waitFor(() => second.length === 3, "the 3 replayed signals on the second subscription");
      await hub.rest("POST", "/api/v1/signals", engineToken, signal(strategy));
      await waitFor(() => second.length === 4, "a live signal on the second subscription");
      await client.heartbeat();
      assert.deepEqual(second, [1, 2, 3, 4], "each once, in order");
      assert.deepEqual(first, [], "nothing for the subscription that was withdrawn");
      assert.equal(client.position(channel).offset, 4);
      const conns = await hub.rest("GET", "/api/v1/connections", adminToken);
      const mine = conns.body.items.find((c) => c.id === client.connectionId);
      assert.deepEqual(mine.subscriptions.filter((c) => c === channel), [channel]);
      // And an unsubscribe of a live subscription reaches the hub.
      await client.unsubscribe(channel);
      const after = await hub.rest("GET", "/api/v1/connections", adminToken);
      assert.ok(!after.body.items.find((c) => c.id === client.connectionId).subscriptions.includes(channel));
    } finally {
      client.close();
    }
  });

  test(`[${encoding}] a subscription survives a hub restart and recovers every missed signal exactly once`, async () => {
    const strategy = `jsrecov${encoding}`;
    const channel = `signals:${strategy}`;
    const gate = { open: true, closedPort: await freePort() };
    const received = [];
    const gaps = [];
    const closes = [];
    const hints = [];
    const sub = new MTBridgeClient(hub.wsUrl, {
      token: dashToken,
      WebSocket: gatedWebSocket(gate),
      encoding,
      backoffInitialMs: 50,
      backoffMaxMs: 300,
    });
    sub.on("gap", (g) => gaps.push(g));
    sub.on("close", (c) => closes.push(c));
    sub.on("reconnect", (h) => hints.push(h));
    const ids = [];
    try {
      await sub.connect();
      const first = await sub.subscribe(channel, (payload, meta) => received.push({ id: payload.id, offset: meta.offset }), {
        since: 0,
      });
      assert.equal(first.durable, true);
      for (let i = 0; i < 5; i += 1) {
        const s = signal(strategy);
        ids.push(s.id);
        const r = await hub.rest("POST", "/api/v1/signals", engineToken, s);
        assert.equal(r.status, 201, JSON.stringify(r.body));
      }
      await waitFor(() => received.length === 5, "5 live signals");
      const before = sub.position(channel);
      assert.equal(before.offset, received[4].offset);

      // Restart the hub while the client cannot get back in, publish what it will have to recover.
      gate.open = false;
      await hub.stop();
      await waitFor(() => closes.some((c) => c.code === 1001), "close 1001 from a graceful shutdown");
      const shutdownClose = closes.find((c) => c.code === 1001);
      assert.equal(shutdownClose.reconnect, true);
      // The hub announced the shutdown with a reconnect hint; the delay is that hint (capped at
      // backoffMaxMs), not the computed backoff.
      assert.equal(hints.length, 1, "one reconnect hint before the 1001");
      assert.equal(hints[0].reason, "shutdown");
      assert.equal(shutdownClose.delayMs, Math.min(hints[0].afterMs, 300));
      await hub.start();
      for (let i = 0; i < 7; i += 1) {
        const s = signal(strategy);
        ids.push(s.id);
        const r = await hub.rest("POST", "/api/v1/signals", engineToken, s);
        assert.equal(r.status, 201, JSON.stringify(r.body));
      }
      // A duplicate publish must not produce a second message.
      const dup = await hub.rest("POST", "/api/v1/signals", engineToken, { ...signal(strategy), id: ids[ids.length - 1] });
      assert.equal(dup.body.duplicate, true);
      assert.equal(received.length, 5);
      assert.notEqual(sub.state, State.OPEN);

      const resubscribed = new Promise((resolve) => {
        const off = sub.on("subscribed", (ev) => {
          if (ev.channel === channel && ev.resubscribed) {
            off();
            resolve(ev.result);
          }
        });
      });
      gate.open = true;
      const result = await resubscribed;
      assert.equal(result.recovered, true, JSON.stringify(result));
      assert.equal(result.replayed, 7);
      await waitFor(() => received.length === 12, "12 signals after recovery");
      // One more, live, after the recovery.
      const s = signal(strategy);
      ids.push(s.id);
      await hub.rest("POST", "/api/v1/signals", engineToken, s);
      await waitFor(() => received.length === 13, "the live signal after recovery");
      // A heartbeat round trip after the last message: anything still in flight would have arrived.
      await sub.heartbeat();
      assert.deepEqual(
        received.map((r) => r.id),
        ids,
      );
      const offsets = received.map((r) => r.offset);
      for (let i = 1; i < offsets.length; i += 1) assert.equal(offsets[i], offsets[i - 1] + 1, "contiguous offsets");
      assert.equal(gaps.length, 0, "a recovered durable channel reports no gap");
      assert.ok(sub.reconnects >= 1);
      assert.equal(sub.welcome.encoding, encoding);
    } finally {
      sub.close();
    }
  });

  test(`[${encoding}] token_expiring calls the refresh hook and sends auth.refresh`, async () => {
    // A token that lives 62 s is inside the hub's 60 s warning window at once.
    const sub = `refresher-${encoding}`;
    const shortToken = hub.token("dashboard", sub, "--account", "*", "--ttl", "62");
    const longToken = hub.token("dashboard", sub, "--account", "*", "--ttl", "3600");
    let calls = 0;
    const client = new MTBridgeClient(hub.wsUrl, {
      token: shortToken,
      WebSocket,
      encoding,
      refreshToken: async () => {
        calls += 1;
        return longToken;
      },
    });
    const warnings = [];
    client.on("warning", (w) => warnings.push(w));
    const refreshed = new Promise((resolve) => client.on("token", resolve));
    try {
      const auth = await client.connect();
      const result = await refreshed;
      assert.equal(calls, 1);
      assert.equal(warnings[0].code, "token_expiring");
      assert.equal(result.sub, sub);
      assert.ok(result.expiresAt > auth.expiresAt);
      assert.equal(client.token, longToken);
    } finally {
      client.close();
    }
  });
}

test("an ephemeral subscription reports a gap after a reconnect (state must be reloaded)", async () => {
  const client = new MTBridgeClient(hub.wsUrl, { token: adminToken, WebSocket, backoffInitialMs: 50, backoffMaxMs: 200 });
  const gaps = [];
  client.on("gap", (g) => gaps.push(g));
  try {
    await client.connect();
    const r = await client.subscribe("system:health", () => {});
    assert.equal(r.durable, false);
    const conns = await hub.rest("GET", "/api/v1/connections", adminToken);
    const mine = conns.body.items.find((c) => c.id === client.connectionId);
    assert.ok(mine, "own connection listed");
    const closes = [];
    client.on("close", (c) => closes.push(c));
    const del = await hub.rest("DELETE", `/api/v1/connections/${client.connectionId}`, adminToken);
    assert.equal(del.status, 200);
    await waitFor(() => gaps.length === 1, "gap on system:health after an operator close");
    assert.equal(closes[0].code, 4006);
    assert.equal(closes[0].reconnect, true);
    assert.equal(gaps[0].channel, "system:health");
  } finally {
    client.close();
  }
});

test("a revoked token stops the client for good (4501, no reconnect)", async () => {
  const token = hub.token("dashboard", "doomed", "--account", "*");
  const client = new MTBridgeClient(hub.wsUrl, { token, WebSocket, backoffInitialMs: 50 });
  const closes = [];
  const states = [];
  client.on("close", (c) => closes.push(c));
  client.on("state", (s) => states.push(s.state));
  try {
    await client.connect();
    const r = await hub.rest("POST", "/api/v1/tokens/revoke", adminToken, { kind: "sub", value: "doomed" });
    assert.equal(r.status, 200);
    await waitFor(() => client.state === State.CLOSED, "terminal close");
    assert.equal(closes[0].code, 4501);
    assert.equal(closes[0].reconnect, false);
    assert.equal(closes[0].delayMs, null);
    assert.equal(closes.length, 1, "no reconnect attempt");
    assert.ok(!states.includes(State.RECONNECTING), "never scheduled a reconnect");
  } finally {
    client.close();
  }
});

test("connect() rejects on an invalid token without retrying", async () => {
  const client = new MTBridgeClient(hub.wsUrl, { token: "not-a-jwt", WebSocket, backoffInitialMs: 50 });
  await assert.rejects(client.connect(), (err) => err.code === "token_invalid" || err.payload?.code === 4500);
  assert.equal(client.state, State.CLOSED);
  assert.equal(client.lastClose.code, 4500);
});

test("an expired token closes with 4004; the refresh hook is awaited before the reconnect", async () => {
  // A token past its exp (beyond the 5 s leeway) is refused at auth with token_expired, then 4004.
  const expired = hub.token("dashboard", "late", "--account", "*", "--ttl", "-30");
  const fresh = hub.token("dashboard", "late", "--account", "*", "--ttl", "3600");
  let calls = 0;
  const client = new MTBridgeClient(hub.wsUrl, {
    token: expired,
    WebSocket,
    backoffInitialMs: 20,
    backoffMaxMs: 50,
    refreshToken: async () => {
      calls += 1;
      return fresh;
    },
  });
  const closes = [];
  client.on("close", (c) => closes.push(c));
  try {
    const auth = await client.connect();
    assert.equal(auth.sub, "late");
    assert.equal(closes[0].code, 4004);
    assert.equal(closes[0].reconnect, true);
    assert.equal(calls, 1);
    assert.equal(client.token, fresh);
  } finally {
    client.close();
  }
});

// -- against a scripted server, in both encodings -----------------------------------------------

for (const encoding of ENCODINGS) {
  test(`[${encoding}] requests time out and a silent connection is declared dead, then reconnected`, async () => {
    // Answers auth only; everything else (heartbeats included) goes unanswered.
    const fake = await fakeHub(WebSocketServer, {
      onMessage: (sock, msg, send) => {
        if (msg.type === "auth") send(sock, { type: "result", requestId: msg.requestId, payload: { sub: "x", role: "dashboard" } });
      },
    });
    const client = new MTBridgeClient(fake.url, {
      token: "t",
      WebSocket,
      encoding,
      requestTimeoutMs: 150,
      heartbeatIntervalMs: 100,
      heartbeatMisses: 2,
      backoffInitialMs: 20,
      backoffMaxMs: 50,
    });
    const closes = [];
    client.on("close", (c) => closes.push(c));
    try {
      await client.connect();
      await assert.rejects(client.heartbeat(), (err) => err.code === "timeout" && err.retryable === true);
      await waitFor(() => closes.some((c) => c.code === 4002), "client-side heartbeat timeout");
      assert.equal(closes.find((c) => c.code === 4002).reconnect, true);
      await waitFor(() => fake.sockets.length >= 2, "a reconnect after the dead connection");
    } finally {
      client.close();
      await fake.close();
    }
  });

  test(`[${encoding}] the reconnect message's afterMs sets the delay before reconnecting after 1001`, async () => {
    const fake = await fakeHub(WebSocketServer, {
      onConnection: (sock, send, n) => send(sock, { type: "welcome", payload: { connectionId: `c-${n}`, protocol: "mtbridge.v1", encoding } }),
      onMessage: (sock, msg, send) => {
        if (msg.type === "auth") send(sock, { type: "result", requestId: msg.requestId, payload: { sub: "x", role: "dashboard" } });
      },
    });
    const client = new MTBridgeClient(fake.url, { token: "t", WebSocket, encoding, backoffInitialMs: 10_000 });
    const closes = [];
    client.on("close", (c) => closes.push(c));
    try {
      await client.connect();
      assert.equal(client.connectionId, "c-1");
      assert.equal(fake.sockets[0].protocol, client.protocol);
      const reopened = new Promise((resolve) => client.on("open", (ev) => ev.reconnected && resolve(ev)));
      fake.send(fake.sockets[0], { type: "reconnect", payload: { afterMs: 300, reason: "shutdown" } });
      fake.sockets[0].close(1001, "hub shutting down");
      await reopened;
      assert.equal(closes[0].code, 1001);
      assert.equal(closes[0].reconnect, true);
      assert.equal(closes[0].delayMs, 300, "the hint, not the 10 s backoff");
      assert.equal(client.connectionId, "c-2");
    } finally {
      client.close();
      await fake.close();
    }
  });

  test(`[${encoding}] a subscription the hub pushed (REST-managed) is adopted, resumed by offset after a reconnect, and left alone without a hook`, async () => {
    // The scripted hub pushes `subscribed` + two messages on the first connection, then records
    // the subscribes of the next one; docs/protocol.md, "Subscriptions managed over REST".
    const subscribes = [];
    const fake = await fakeHub(WebSocketServer, {
      onMessage: (sock, msg, send) => {
        if (msg.type === "auth") {
          send(sock, { type: "result", requestId: msg.requestId, payload: { sub: "x", role: "dashboard" } });
          if (fake.sockets.length === 1) {
            send(sock, { type: "subscribed", channel: "signals:rest", payload: { offset: 7, epoch: "e1", durable: true, recovered: true, replayed: 2 } });
            send(sock, { type: "message", channel: "signals:rest", offset: 6, payload: { n: 6 } });
            send(sock, { type: "message", channel: "signals:rest", offset: 7, payload: { n: 7 } });
            send(sock, { type: "subscribed", channel: "system:health", payload: { offset: 0, epoch: null, durable: false } });
          }
        } else if (msg.type === "subscribe") {
          subscribes.push({ channel: msg.channel, payload: msg.payload });
          send(sock, { type: "result", requestId: msg.requestId, channel: msg.channel, payload: { offset: 7, epoch: "e1", durable: true, recovered: true, replayed: 0 } });
        } else if (msg.type === "heartbeat") {
          send(sock, { type: "heartbeat", requestId: msg.requestId, payload: { ts: 1 } });
        }
      },
    });
    const got = [];
    const pushed = [];
    const client = new MTBridgeClient(fake.url, {
      token: "t",
      WebSocket,
      encoding,
      backoffInitialMs: 20,
      backoffMaxMs: 50,
      onHubSubscription: (channel) => (channel.startsWith("signals:") ? (payload, meta) => got.push([payload.n, meta.offset]) : undefined),
    });
    client.on("subscribed", (ev) => ev.pushed && pushed.push([ev.channel, ev.adopted]));
    const gaps = [];
    client.on("gap", (g) => gaps.push(g.channel));
    try {
      await client.connect();
      await waitFor(() => got.length === 2 && pushed.length === 2, "the pushed subscriptions and their messages");
      assert.deepEqual(got, [[6, 6], [7, 7]]);
      assert.deepEqual(pushed, [["signals:rest", true], ["system:health", false]]);
      assert.deepEqual(client.position("signals:rest"), { offset: 7, epoch: "e1", durable: true });
      assert.equal(client.position("system:health"), null, "not adopted: not the client's");
      const reopened = new Promise((resolve) => client.on("open", (ev) => ev.reconnected && resolve()));
      fake.sockets[0].close(4006, "closed by operator");
      await reopened;
      await waitFor(() => subscribes.length === 1, "the adopted subscription resubscribed");
      await client.heartbeat();
      assert.deepEqual(subscribes, [{ channel: "signals:rest", payload: { since: 7, epoch: "e1" } }]);
      assert.deepEqual(gaps, []);
    } finally {
      client.close();
      await fake.close();
    }
  });

  test(`[${encoding}] an undecodable frame is reported and the connection goes on`, async () => {
    const fake = await fakeHub(WebSocketServer, {
      onMessage: (sock, msg, send) => {
        if (msg.type === "auth") send(sock, { type: "result", requestId: msg.requestId, payload: { sub: "x", role: "dashboard" } });
        if (msg.type === "heartbeat") {
          sock.send(encoding === "json" ? "{not json" : Buffer.from([0xc1])); // 0xc1: never used in MessagePack
          send(sock, { type: "heartbeat", requestId: msg.requestId, payload: { ts: 1 } });
        }
      },
    });
    const client = new MTBridgeClient(fake.url, { token: "t", WebSocket, encoding });
    const errors = [];
    client.on("error", ({ error }) => errors.push(error));
    try {
      await client.connect();
      assert.deepEqual(await client.heartbeat(), { ts: 1 });
      assert.equal(errors.length, 1);
      assert.equal(errors[0].code, encoding === "json" ? "invalid_json" : "invalid_msgpack");
      assert.equal(client.state, State.OPEN);
    } finally {
      client.close();
      await fake.close();
    }
  });
}

test("close() while the socket is still connecting rejects connect() and throws nothing later", async () => {
  // A server that accepts TCP and never answers the handshake: the socket stays CONNECTING.
  const sockets = [];
  const srv = net.createServer((sock) => sockets.push(sock));
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  const uncaught = [];
  const onUncaught = (err) => uncaught.push(err);
  process.on("uncaughtException", onUncaught);
  const client = new MTBridgeClient(`ws://127.0.0.1:${port}/ws`, { token: "t", WebSocket });
  try {
    const opening = client.connect();
    await waitFor(() => sockets.length === 1, "the TCP connection");
    client.close();
    await assert.rejects(opening, (err) => err.code === "closed");
    // Node's ws reports the aborted handshake on the next tick; give it several.
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(uncaught, []);
    assert.equal(client.state, State.CLOSED);
  } finally {
    process.off("uncaughtException", onUncaught);
    for (const s of sockets) s.destroy();
    await new Promise((r) => srv.close(r));
  }
});

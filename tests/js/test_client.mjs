// Node tests for bridge/dashboard/static/mtbridge.js: pure helpers, then reconnect and recovery
// against a live hub subprocess (and a tiny silent ws server for dead-connection detection).
//
// Run: MTBRIDGE_BIN=.venv/bin/mtbridge node --test tests/js/test_client.mjs
// (tests/js/test_js_client.py does this from pytest). No timing assertions: every wait is a
// generous deadline on a condition.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import WebSocket, { WebSocketServer } from "ws";

import {
  MTBridgeClient,
  MTBridgeError,
  State,
  backoffDelay,
  isReconnect,
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
} from "../../bridge/dashboard/static/mtbridge.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const BIN = process.env.MTBRIDGE_BIN || path.join(ROOT, ".venv", "bin", "mtbridge");
const FACTOR = Number(process.env.MTBRIDGE_TESTS_TIMEOUT_FACTOR || "1");
const WAIT_MS = 30_000 * FACTOR;

// -- helpers ------------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

class HubProcess {
  constructor(dataDir, port) {
    this.dataDir = dataDir;
    this.port = port;
    this.proc = null;
    this.log = "";
  }
  get base() {
    return `http://127.0.0.1:${this.port}`;
  }
  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }
  async start() {
    this.proc = spawn(BIN, ["serve", "--data-dir", this.dataDir, "--port", String(this.port), "--log-level", "warning"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.proc.stderr.on("data", (d) => {
      this.log = (this.log + d.toString()).slice(-20_000);
    });
    const proc = this.proc;
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`hub exited early:\n${this.log}`);
      try {
        const r = await fetch(`${this.base}/readyz`);
        return r.status === 200;
      } catch {
        return false;
      }
    }, "hub /readyz");
  }
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), 20_000 * FACTOR);
    await exited;
    clearTimeout(killer);
    this.proc = null;
  }
  token(role, sub, ...extra) {
    return execFileSync(BIN, ["token", "--data-dir", this.dataDir, "--role", role, "--sub", sub, ...extra], {
      encoding: "utf8",
    }).trim();
  }
  async rest(method, p, token, body) {
    const r = await fetch(`${this.base}${p}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }
}

function signal(strategy, account = "50123") {
  return {
    id: randomUUID(),
    strategy,
    accounts: [account],
    symbol: "EURUSD",
    action: "open",
    side: "buy",
    orderType: "market",
    volume: 0.1,
    ttl: 600,
  };
}

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

// -- against a live hub -------------------------------------------------------------------------

test("auth in the first message, request promises, error replies and heartbeat", async () => {
  const client = new MTBridgeClient(hub.wsUrl, { token: dashToken, WebSocket });
  const states = [];
  client.on("state", ({ state }) => states.push(state));
  try {
    const auth = await client.connect();
    assert.equal(auth.sub, "wall");
    assert.equal(auth.role, "dashboard");
    assert.equal(client.state, State.OPEN);
    assert.deepEqual(states, [State.CONNECTING, State.AUTHENTICATING, State.OPEN]);
    assert.equal(client.welcome.protocol, "mtbridge.v1");
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

test("a subscription survives a hub restart and recovers every missed signal exactly once", async () => {
  const strategy = "jsrecov";
  const channel = `signals:${strategy}`;
  const gate = { open: true, closedPort: await freePort() };
  const received = [];
  const gaps = [];
  const closes = [];
  const sub = new MTBridgeClient(hub.wsUrl, {
    token: dashToken,
    WebSocket: gatedWebSocket(gate),
    backoffInitialMs: 50,
    backoffMaxMs: 300,
  });
  sub.on("gap", (g) => gaps.push(g));
  sub.on("close", (c) => closes.push(c));
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
    await sleep(200);
    assert.deepEqual(
      received.map((r) => r.id),
      ids,
    );
    const offsets = received.map((r) => r.offset);
    for (let i = 1; i < offsets.length; i += 1) assert.equal(offsets[i], offsets[i - 1] + 1, "contiguous offsets");
    assert.equal(gaps.length, 0, "a recovered durable channel reports no gap");
    assert.ok(sub.reconnects >= 1);
  } finally {
    sub.close();
  }
});

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
  client.on("close", (c) => closes.push(c));
  try {
    await client.connect();
    const r = await hub.rest("POST", "/api/v1/tokens/revoke", adminToken, { kind: "sub", value: "doomed" });
    assert.equal(r.status, 200);
    await waitFor(() => client.state === State.CLOSED, "terminal close");
    assert.equal(closes[0].code, 4501);
    assert.equal(closes[0].reconnect, false);
    await sleep(300);
    assert.equal(closes.length, 1, "no reconnect attempt");
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

test("token_expiring calls the refresh hook and sends auth.refresh", async () => {
  // A token that lives 62 s is inside the hub's 60 s warning window at once.
  const shortToken = hub.token("dashboard", "refresher", "--account", "*", "--ttl", "62");
  const longToken = hub.token("dashboard", "refresher", "--account", "*", "--ttl", "3600");
  let calls = 0;
  const client = new MTBridgeClient(hub.wsUrl, {
    token: shortToken,
    WebSocket,
    refreshToken: async () => {
      calls += 1;
      return longToken;
    },
  });
  const refreshed = new Promise((resolve) => client.on("token", resolve));
  try {
    const auth = await client.connect();
    const result = await refreshed;
    assert.equal(calls, 1);
    assert.equal(result.sub, "refresher");
    assert.ok(result.expiresAt > auth.expiresAt);
    assert.equal(client.token, longToken);
  } finally {
    client.close();
  }
});

// -- against a silent server --------------------------------------------------------------------

test("requests time out and a silent connection is declared dead, then reconnected", async () => {
  const port = await freePort();
  const wss = new WebSocketServer({ host: "127.0.0.1", port, handleProtocols: (p) => [...p][0] });
  let connections = 0;
  wss.on("connection", (sock) => {
    connections += 1;
    sock.on("message", (data) => {
      const msg = JSON.parse(data.toString());
      // Answer auth only; everything else (heartbeats included) goes unanswered.
      if (msg.type === "auth") {
        sock.send(JSON.stringify({ type: "result", requestId: msg.requestId, payload: { sub: "x", role: "dashboard" } }));
      }
    });
  });
  await new Promise((r) => wss.once("listening", r));
  const client = new MTBridgeClient(`ws://127.0.0.1:${port}/ws`, {
    token: "t",
    WebSocket,
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
    await waitFor(() => connections >= 2, "a reconnect after the dead connection");
  } finally {
    client.close();
    for (const s of wss.clients) s.terminate();
    await new Promise((r) => wss.close(r));
  }
});

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

test("the reconnect message's afterMs sets the delay before reconnecting after 1001", async () => {
  const port = await freePort();
  const wss = new WebSocketServer({ host: "127.0.0.1", port, handleProtocols: (p) => [...p][0] });
  const sockets = [];
  wss.on("connection", (sock) => {
    sockets.push(sock);
    sock.send(JSON.stringify({ type: "welcome", payload: { connectionId: `c-${sockets.length}`, protocol: "mtbridge.v1" } }));
    sock.on("message", (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === "auth") {
        sock.send(JSON.stringify({ type: "result", requestId: msg.requestId, payload: { sub: "x", role: "dashboard" } }));
      }
    });
  });
  await new Promise((r) => wss.once("listening", r));
  const client = new MTBridgeClient(`ws://127.0.0.1:${port}/ws`, { token: "t", WebSocket, backoffInitialMs: 10_000 });
  const closes = [];
  client.on("close", (c) => closes.push(c));
  try {
    await client.connect();
    assert.equal(client.connectionId, "c-1");
    const reopened = new Promise((resolve) => client.on("open", (ev) => ev.reconnected && resolve(ev)));
    sockets[0].send(JSON.stringify({ type: "reconnect", payload: { afterMs: 300, reason: "shutdown" } }));
    sockets[0].close(1001, "hub shutting down");
    await reopened;
    assert.equal(closes[0].code, 1001);
    assert.equal(closes[0].reconnect, true);
    assert.equal(closes[0].delayMs, 300, "the hint, not the 10 s backoff");
    assert.equal(client.connectionId, "c-2");
  } finally {
    client.close();
    for (const s of wss.clients) s.terminate();
    await new Promise((r) => wss.close(r));
  }
});

test("the global WebSocket works too (Node >= 22)", { skip: typeof globalThis.WebSocket !== "function" && "no global WebSocket in this Node" }, async () => {
  const client = new MTBridgeClient(hub.wsUrl, { token: dashToken });
  try {
    const auth = await client.connect();
    assert.equal(auth.role, "dashboard");
    const r = await client.subscribe("system:health", () => {});
    assert.equal(r.durable, false);
  } finally {
    client.close();
  }
});

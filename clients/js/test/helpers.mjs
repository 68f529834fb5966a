// Shared helpers of the client's Node tests: a live hub subprocess (`mtbridge serve`), free ports,
// condition waits (no fixed sleeps, no timing assertions), and a scripted fake hub for the cases a
// real hub cannot be made to produce on demand.

import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";

import { jsonCodec } from "../src/mtbridge.js";
import { msgpackCodec } from "../src/msgpack.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "..", "..", "..");
export const BIN = process.env.MTBRIDGE_BIN || path.join(ROOT, ".venv", "bin", "mtbridge");
export const FACTOR = Number(process.env.MTBRIDGE_TESTS_TIMEOUT_FACTOR || "1");
export const WAIT_MS = 30_000 * FACTOR;
export const ENCODINGS = ["json", "msgpack"];
export const CODECS = { json: jsonCodec, msgpack: msgpackCodec };

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(cond, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** `mtbridge serve` on a free port with its own data dir; restartable on the same port. */
export class HubProcess {
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

export function signal(strategy, account = "50123") {
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

/**
 * A scripted hub on a `ws` WebSocketServer that speaks whichever subprotocol the client offers
 * (first one), so the same script runs in both encodings. `onMessage(sock, msg, send)` gets every
 * decoded client message; `send(sock, envelope)` encodes with the connection's codec.
 */
export async function fakeHub(WebSocketServer, { onConnection = () => {}, onMessage = () => {} } = {}) {
  const port = await freePort();
  const wss = new WebSocketServer({ host: "127.0.0.1", port, handleProtocols: (p) => [...p][0] });
  const sockets = [];
  const codecOf = (sock) => (sock.protocol === msgpackCodec.protocol ? msgpackCodec : jsonCodec);
  const send = (sock, envelope) => sock.send(codecOf(sock).encode(envelope));
  wss.on("connection", (sock) => {
    sockets.push(sock);
    onConnection(sock, send, sockets.length);
    sock.on("message", (data, isBinary) => {
      const codec = codecOf(sock);
      if (isBinary !== codec.binary) throw new Error(`a ${isBinary ? "binary" : "text"} frame on ${sock.protocol}`);
      onMessage(sock, codec.decode(isBinary ? data : data.toString()), send);
    });
  });
  await new Promise((r) => wss.once("listening", r));
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    sockets,
    send,
    async close() {
      for (const s of wss.clients) s.terminate();
      await new Promise((r) => wss.close(r));
    },
  };
}

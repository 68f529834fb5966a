// A typed usage of @mtbridge/client, checked by `tsc --noEmit -p test/tsconfig.json`
// (tests/jsclient/test_package.py). It imports the package by its name, through package.json's
// "exports", as a TypeScript user would; nothing here runs. Lines marked @ts-expect-error must
// stay errors: they prove the declarations refuse what the hub would refuse.

import WebSocket from "ws";
import {
  MTBridgeClient,
  MTBridgeError,
  State,
  PROTOCOLS,
  isReconnect,
  backoffDelay,
  loadCodec,
  jsonCodec,
  type AuthResult,
  type ChannelPayload,
  type Codec,
  type ControlCommand,
  type HealthSample,
  type PublishResult,
  type Signal,
  type SignalInput,
  type StateName,
  type SubscribeResult,
  type SystemSignalsMessage,
  type TradeEvent,
} from "@mtbridge/client";
import { msgpackCodec } from "@mtbridge/client/msgpack";

declare const token: string;

export async function usage(): Promise<void> {
  // Node 20: the ws package; browsers and Node 22+: the global WebSocket (lib DOM here).
  const node = new MTBridgeClient("ws://127.0.0.1:8765/ws", {
    token,
    WebSocket,
    webSocketOptions: { headers: { "User-Agent": "typed-test" } },
    encoding: "msgpack",
    refreshToken: async () => token,
    requestTimeoutMs: 5_000,
    backoffFloorsMs: { 4003: 10_000 },
    onHubSubscription: (channel, result) =>
      channel.startsWith("signals:") && result.durable ? (payload, { offset }) => console.log(payload, offset) : undefined,
  });
  const browser = new MTBridgeClient("ws://127.0.0.1:8765/ws", { token, WebSocket: globalThis.WebSocket });
  const eager = new MTBridgeClient("ws://127.0.0.1:8765/ws", { token, codec: msgpackCodec });
  const protocol: "mtbridge.v1.msgpack" = msgpackCodec.protocol;
  const json: Codec = jsonCodec;
  const loaded: Codec = await loadCodec("msgpack");
  void [browser, eager, protocol, json, loaded, PROTOCOLS.msgpack];

  const auth: AuthResult = await node.connect();
  const role: "engine" | "ea" | "dashboard" | "admin" = auth.role;
  const state: StateName = node.state;
  if (state === State.OPEN && isReconnect(1001)) void backoffDelay(3, { maxMs: 1000 });
  void role;

  node.on("state", ({ state, previous }) => console.log(previous, "->", state));
  node.on("close", ({ code, reconnect, delayMs }) => console.log(code, reconnect, delayMs ?? 0));
  node.on("gap", ({ channel, result }) => console.log(channel, result.reason));
  node.on("subscribed", ({ channel, pushed, adopted }) => console.log(channel, pushed === true, adopted));
  node.on("reconnect", ({ afterMs }) => console.log(afterMs + 1));
  node.on("signal.status", (s) => console.log(s.signalId, s.status));
  node.on("token", ({ expiresAt }) => console.log(expiresAt));
  node.on("error", ({ error }) => {
    if (error instanceof MTBridgeError) console.log(error.code, error.retryable, error.details?.[0]?.field);
  });
  const off = node.on("message", (env) => console.log(env.type));
  off();

  // Channel names type their payloads.
  const sub: SubscribeResult = await node.subscribe(
    "signals:alpha",
    (signal, { offset }) => {
      const s: Signal = signal;
      console.log(s.id, s.expiresAt, offset);
    },
    { since: 0 },
  );
  if (sub.durable && sub.recovered === false) console.log(sub.reason);
  await node.subscribe("account:50123:events", (event: TradeEvent) => {
    if (event.kind === "deal") console.log(event.entry, event.price);
    if (event.kind === "account") console.log(event.equity);
  });
  await node.subscribe("account:50123:control", (c: ControlCommand) => console.log(c.command));
  await node.subscribe("system:health", (h: HealthSample) => console.log(h.latencyP99Ms));
  await node.subscribe("system:signals", (m: SystemSignalsMessage) => {
    if (m.event === "status") console.log(m.status);
    else if (m.event === "signal") console.log(m.signal.offset);
  });
  await node.subscribe<string, { price: number }>("instrument:BTCUSDT:top", (t) => console.log(t.price));
  const health: ChannelPayload<"system:health"> = { ts: 1 } as HealthSample;
  void health;

  const signal: SignalInput = {
    id: "0b7c6a3e-8f0e-4c55-9d7e-2d3f1f0a9b11",
    strategy: "alpha",
    accounts: ["50123"],
    symbol: "EURUSD",
    action: "open",
    side: "buy",
    orderType: "market",
    volume: 0.1,
    ttl: 30,
  };
  const published: PublishResult = await node.publish("signals:alpha", signal);
  console.log(published.offset, published.duplicate);
  const ack = await node.ack(signal.id, "50123");
  console.log(ack.status);
  const te = await node.tradeEvent({
    id: "5f0b7c6a-8f0e-4c55-9d7e-2d3f1f0a9b11",
    kind: "deal",
    account: "50123",
    ts: Date.now(),
    ticket: 1,
    symbol: "EURUSD",
    side: "buy",
    entry: "in",
    volume: 0.1,
    price: 1.08,
  });
  console.log(te.duplicate);
  const hb = await node.heartbeat({ timeoutMs: 1000 });
  console.log(hb.ts);
  const refreshed = await node.request("auth.refresh", { payload: { token } });
  console.log(refreshed.expiresAt);
  console.log(node.position("signals:alpha")?.offset);
  await node.unsubscribe("signals:alpha");
  node.close();

  // @ts-expect-error: an unknown encoding
  new MTBridgeClient("ws://x/ws", { token, encoding: "cbor" });
  // @ts-expect-error: a signal needs an action
  await node.publish("signals:alpha", { id: "x", strategy: "alpha" });
  // @ts-expect-error: a deal needs its ticket, entry, volume and price
  await node.tradeEvent({ id: "x", kind: "deal", account: "1", ts: 0 });
  // @ts-expect-error: `since` is a number
  await node.subscribe("signals:alpha", () => {}, { since: "0" });
}

// A consumer of the packed @mtbridge/client: tests/jsclient/test_package.py copies this file into a
// fresh Node project that installed the tarball from `npm pack`, and runs it against a live hub.
//
//   node roundtrip.mjs HUB_WS_URL ENGINE_TOKEN DASHBOARD_TOKEN ENCODING [ws|global]
//
// It imports the package by name only, subscribes from offset 0, publishes a signal, waits for it,
// and prints one JSON line: what a user's first program would check by eye.

import { randomUUID } from "node:crypto";
import { MTBridgeClient, PROTOCOLS } from "@mtbridge/client";

const [url, engineToken, dashToken, encoding, impl = "ws"] = process.argv.slice(2);
const WebSocket = impl === "ws" ? (await import("ws")).default : globalThis.WebSocket;

const engine = new MTBridgeClient(url, { token: engineToken, encoding, WebSocket });
const dash = new MTBridgeClient(url, { token: dashToken, encoding, WebSocket });
const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(3);
}, 60_000);
try {
  await Promise.all([engine.connect(), dash.connect()]);
  const strategy = `packed${encoding}${impl}`;
  let deliver;
  const received = new Promise((resolve) => (deliver = resolve));
  // Resolves once the subscription is live, so the round trip below is a live delivery.
  await dash.subscribe(`signals:${strategy}`, (payload, meta) => deliver({ payload, meta }), { since: 0 });
  const sent = {
    id: randomUUID(),
    strategy,
    accounts: ["50123"],
    symbol: "EURUSD",
    action: "open",
    side: "buy",
    orderType: "market",
    volume: 0.25,
    sl: 1.07,
    tp: 1.09,
    ttl: 60,
  };
  const published = await engine.publish(`signals:${strategy}`, sent);
  const { payload, meta } = await received;
  console.log(
    JSON.stringify({
      encoding: dash.welcome.encoding,
      protocol: dash.protocol,
      expectedProtocol: PROTOCOLS[encoding],
      publishedOffset: published.offset,
      receivedOffset: meta.offset,
      sameId: payload.id === sent.id,
      volume: payload.volume,
      sl: payload.sl,
    }),
  );
} finally {
  clearTimeout(timer);
  engine.close();
  dash.close();
}

// The client on the runtime's own WebSocket (Node 22+, or Node 20.10+ with --experimental-websocket:
// undici's implementation, which hands binary frames over as Blobs unless binaryType is set), with no
// `ws` import anywhere in this file. A subscribe-publish round trip and a reconnect against a live
// hub, in both encodings. tests/jsclient/test_node.py runs it with --experimental-websocket when
// this Node has no global WebSocket of its own.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { MTBridgeClient, State } from "../src/mtbridge.js";
import { ENCODINGS, HubProcess, freePort, signal, waitFor } from "./helpers.mjs";

const skip = typeof globalThis.WebSocket !== "function" && "no global WebSocket (Node < 22 without --experimental-websocket)";

let hub;
let dataDir;
let engineToken;
let dashToken;
let adminToken;

before(async () => {
  if (skip) return;
  dataDir = mkdtempSync(path.join(tmpdir(), "mtb-js-global-"));
  hub = new HubProcess(dataDir, await freePort());
  await hub.start();
  engineToken = hub.token("engine", "engine-global", "--publish", "signals:*", "--subscribe", "signals:*");
  dashToken = hub.token("dashboard", "wall-global", "--account", "*");
  adminToken = hub.token("admin", "ops-global", "--account", "*");
});

after(async () => {
  if (skip) return;
  await hub.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

for (const encoding of ENCODINGS) {
  test(`[${encoding}] the global WebSocket: round trip, then a reconnect that recovers by offset`, { skip }, async () => {
    const channel = `signals:global${encoding}`;
    const engine = new MTBridgeClient(hub.wsUrl, { token: engineToken, encoding });
    const dash = new MTBridgeClient(hub.wsUrl, { token: dashToken, encoding, backoffInitialMs: 20, backoffMaxMs: 100 });
    const got = [];
    try {
      await Promise.all([engine.connect(), dash.connect()]);
      assert.equal(dash.welcome.encoding, encoding);
      await dash.subscribe(channel, (payload, { offset }) => got.push({ id: payload.id, offset }), { since: 0 });
      const first = signal(`global${encoding}`);
      const r = await engine.publish(channel, first);
      assert.equal(r.duplicate, false);
      await waitFor(() => got.length === 1, "the published signal");

      // An operator closes the dashboard's connection (4006); a signal published meanwhile is
      // recovered from the kept offset on the resubscribe.
      const reopened = new Promise((resolve) => dash.on("open", (ev) => ev.reconnected && resolve()));
      const del = await hub.rest("DELETE", `/api/v1/connections/${dash.connectionId}`, adminToken);
      assert.equal(del.status, 200);
      const second = signal(`global${encoding}`);
      await engine.publish(channel, second);
      await reopened;
      await waitFor(() => got.length === 2, "the signal published across the reconnect");
      await dash.heartbeat();
      assert.deepEqual(got.map((g) => g.id), [first.id, second.id]);
      assert.deepEqual(got.map((g) => g.offset), [1, 2]);
      assert.equal(dash.state, State.OPEN);
    } finally {
      engine.close();
      dash.close();
    }
  });
}

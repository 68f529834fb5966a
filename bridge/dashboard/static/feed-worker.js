// The dashboard's live feed, in a dedicated Web Worker (a module worker started by feed.js): the
// WebSocket, the client (mtbridge.js: auth, subscriptions with offsets, reconnect, token refresh)
// and the decoding of every message run here, off the page's main thread. The page gets the
// channels' payloads in batches, at most one every FLUSH_MS, and the client's lifecycle events
// (state, open, close, warning, token) as they happen. What lives elsewhere: the models and their
// merging of live payloads with REST reloads (model.js, driven by app.js), all rendering (app.js).
//
// Why a worker: at 1,000 signals/s the hub sends the dashboard about 5,000 WebSocket messages a
// second (the signal, three status changes and the trade event of each signal and account). In
// the page each was a task on the main thread, between the frames: the 99th-percentile frame was
// 50-117 ms although the page's own work per frame was 8-17 ms (docs/benchmarks.md, "Dashboard in
// Chromium"). Here they are tasks on the worker's thread; the main thread gets 10 batches a second.
//
// Messages from the page: {type: "start", url, token, channels: {channel: kind}}, {type: "token",
// token} (the answer to a "refresh"), {type: "close"}.
// Messages to the page: {type: "batch", items: [[kind, payload, arrivedAt], ...]} where arrivedAt
// is the arrival in this worker, in ms since the epoch (performance.timeOrigin + now(): the page's
// and the worker's `performance.now()` count from different origins); {type: "refresh"} (the
// client wants a new token); {type: "state" | "open" | "close" | "warning" | "token", event, client}
// where `client` is {state, connectionId, reconnects, lastClose} after the event.

import { MTBridgeClient } from "./mtbridge.js";

// One batch at most every 100 ms: the page redraws its tables 10 times a second (app.js,
// TABLE_EVERY_MS), so a batch per table redraw shows every change as early as sending more often
// would, with 10 main-thread tasks a second instead of 5,000. After a quiet spell the first
// message goes out at once (the next task), so a lone status change is not held back.
const FLUSH_MS = 100;

let client = null;
let batch = [];
let flushTimer = null;
let lastFlush = -Infinity;
const refreshWaiters = [];

function flush() {
  flushTimer = null;
  lastFlush = performance.now();
  const items = batch;
  batch = [];
  if (items.length) postMessage({ type: "batch", items });
}

function enqueue(kind, payload) {
  batch.push([kind, payload, performance.timeOrigin + performance.now()]);
  if (flushTimer === null) flushTimer = setTimeout(flush, Math.max(0, lastFlush + FLUSH_MS - performance.now()));
}

function snapshot() {
  return {
    state: client.state,
    connectionId: client.connectionId,
    reconnects: client.reconnects,
    lastClose: client.lastClose,
  };
}

function forward(type) {
  client.on(type, (event) => {
    // Payloads queued before a lifecycle event reach the page before it (a close, a reconnect).
    if (flushTimer !== null) {
      clearTimeout(flushTimer);
      flush();
    }
    postMessage({ type, event, client: snapshot() });
  });
}

function report(err) {
  console.warn("mtbridge:", err && err.message);
}

function start({ url, token, channels }) {
  client = new MTBridgeClient(url, {
    token,
    // The page asks the operator (its banner); the answer comes back as a "token" message.
    refreshToken: () =>
      new Promise((resolve) => {
        refreshWaiters.push(resolve);
        postMessage({ type: "refresh" });
      }),
  });
  for (const type of ["state", "open", "close", "warning", "token"]) forward(type);
  client.on("error", ({ error }) => report(error));
  for (const [channel, kind] of Object.entries(channels)) {
    client.subscribe(channel, (payload) => enqueue(kind, payload)).catch(report);
  }
  client.connect().catch(report); // a terminal close reaches the page as a "close" message
}

onmessage = ({ data }) => {
  switch (data.type) {
    case "start":
      if (!client) start(data);
      return;
    case "token":
      for (const resolve of refreshWaiters.splice(0)) resolve(data.token);
      return;
    case "close":
      if (client) client.close();
      return;
  }
};

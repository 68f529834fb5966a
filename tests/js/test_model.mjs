// Pure tests of the dashboard's models (bridge/dashboard/static/model.js): keyed merging, so a
// REST reload after a reconnect never duplicates a row, and forward-only delivery status.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  AccountBook,
  ConnectionBook,
  EventLog,
  HealthSeries,
  SignalBook,
  deliveryLatency,
  signalLatency,
} from "../../bridge/dashboard/static/model.js";

const live = (id, createdAt, accounts = ["1"]) => ({
  id, strategy: "alpha", accounts, symbol: "EURUSD", action: "open", side: "buy", volume: 0.1,
  createdAt, expiresAt: createdAt + 30_000, offset: createdAt, channel: "signals:alpha",
});

const rest = (id, createdAt, deliveries) => ({
  id, strategy: "alpha", channel: "signals:alpha", offset: createdAt, accounts: deliveries.map((d) => d.account), groups: [],
  payload: live(id, createdAt), createdAt, expiresAt: createdAt + 30_000, deliveries,
});

test("a signal seen live and again over REST is one row, with the REST statuses merged", () => {
  const book = new SignalBook();
  book.upsert(live("a", 1000));
  book.upsert(rest("a", 1000, [{ account: "1", status: "acked", times: { pending: 1000, delivered: 1005, acked: 1010 }, detail: null }]));
  assert.equal(book.size, 1);
  assert.equal(book.seen, 1);
  const d = book.byId.get("a").deliveries.get("1");
  assert.equal(d.status, "acked");
  assert.equal(d.times.delivered, 1005);
});

test("status only moves forward; executed and rejected are final; execution overtakes expired", () => {
  const book = new SignalBook();
  book.upsert(live("a", 1000, ["1", "2"]));
  book.status({ signalId: "a", account: "1", status: "acked", at: 1010 });
  book.status({ signalId: "a", account: "1", status: "delivered", at: 1005 });
  assert.equal(book.byId.get("a").deliveries.get("1").status, "acked");
  book.status({ signalId: "a", account: "1", status: "executed", at: 1050 });
  book.status({ signalId: "a", account: "1", status: "rejected", at: 1060 });
  assert.equal(book.byId.get("a").deliveries.get("1").status, "executed");
  book.status({ signalId: "a", account: "2", status: "expired", at: 31_000 });
  book.status({ signalId: "a", account: "2", status: "executed", at: 31_500 });
  const rec = book.byId.get("a");
  assert.equal(rec.deliveries.get("2").status, "executed");
  assert.equal(deliveryLatency(rec, rec.deliveries.get("1")), 50);
  assert.equal(signalLatency(rec), 30_500);
});

test("a status that arrives before its signal is applied when the signal arrives", () => {
  const book = new SignalBook();
  book.status({ signalId: "late", account: "1", status: "delivered", at: 5 });
  assert.equal(book.size, 0);
  book.upsert(live("late", 1));
  assert.equal(book.byId.get("late").deliveries.get("1").status, "delivered");
});

test("rows are newest first, older REST items slot in by time, and the cap drops the oldest", () => {
  const book = new SignalBook(3);
  book.upsert(live("t3", 3000));
  book.upsert(live("t4", 4000));
  book.upsert(rest("t1", 1000, []));
  book.upsert(live("t2", 2000));
  assert.deepEqual([0, 1, 2].map((i) => book.at(i).id), ["t4", "t3", "t2"]);
  assert.equal(book.size, 3);
  assert.equal(book.byId.has("t1"), false);
});

test("events are deduplicated by id and filtered", () => {
  const log = new EventLog(10);
  const e = (id, kind, account, ts, signalId) => ({ id, kind, account, ts, signalId });
  assert.equal(log.add(e("1", "deal", "7", 10, "abc")), true);
  assert.equal(log.add({ seq: 1, id: "1", kind: "deal", account: "7", ts: 10, payload: e("1", "deal", "7", 10) }), false);
  log.add(e("2", "order", "8", 20));
  log.add(e("3", "deal", "8", 30, "abd"));
  assert.deepEqual(log.view().map((x) => x.id), ["3", "2", "1"]);
  log.setFilter({ kind: "deal" });
  assert.deepEqual(log.view().map((x) => x.id), ["3", "1"]);
  log.setFilter({ signalId: "abc" });
  assert.deepEqual(log.view().map((x) => x.id), ["1"]);
  log.setFilter({ kind: "", signalId: "", account: "8" });
  assert.deepEqual(log.view().map((x) => x.id), ["3", "2"]);
});

test("accounts merge REST rows with newer live snapshots; connections compute message rates", () => {
  const acc = new AccountBook();
  acc.event({ id: "x", kind: "account", account: "1", ts: 2000, balance: 10, equity: 11, margin: 1, freeMargin: 10, positions: [] });
  acc.fromRest([{ account: "1", connected: true, lastSeen: 1500, balance: 9, equity: 9, updatedAt: 1000, positions: [] }]);
  const a = acc.byLogin.get("1");
  assert.equal(a.equity, 11, "the newer live snapshot wins");
  assert.equal(a.connected, true);
  assert.equal(a.lastSeen, 2000);

  const conns = new ConnectionBook();
  conns.fromRest([{ id: "c1", role: "ea", messagesIn: 10, messagesOut: 100 }], 1000);
  conns.fromRest([{ id: "c1", role: "ea", messagesIn: 30, messagesOut: 300 }], 3000);
  assert.equal(conns.byId.get("c1").inRate, 10);
  assert.equal(conns.byId.get("c1").outRate, 100);
  conns.event({ event: "disconnected", connection: { id: "c1" } });
  assert.equal(conns.byId.size, 0);
});

test("health samples are deduplicated by timestamp and bounded", () => {
  const h = new HealthSeries(3);
  for (const ts of [1, 2, 2, 3, 4]) h.add({ ts, connections: ts });
  assert.deepEqual(h.series("connections"), [2, 3, 4]);
});

test("a signal's version moves with every change its row shows, and only then", () => {
  const book = new SignalBook();
  const rec = book.upsert({ ...live("v", 1000), offset: null });
  const v0 = rec.v;
  book.upsert(live("v", 1000)); // the offset arrives: the row shows it
  assert.ok(rec.v > v0);
  const v1 = rec.v;
  book.upsert(live("v", 1000)); // nothing new
  assert.equal(rec.v, v1);
  book.status({ signalId: "v", account: "1", status: "acked", at: 1010 });
  assert.ok(rec.v > v1);
  const v2 = rec.v;
  book.status({ signalId: "v", account: "1", status: "bogus", at: 1020 }); // ignored
  assert.equal(rec.v, v2);
});

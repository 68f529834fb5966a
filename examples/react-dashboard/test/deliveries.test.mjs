// DeliveryBook: statuses from live pushes and REST pages merge forward-only, in any order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DeliveryBook, RANK } from "../src/deliveries.js";

const S = "0b7c6a3e-8f0e-4c55-9d7e-2d3f1f0a9b11";

test("a status only moves forward", () => {
  const book = new DeliveryBook();
  assert.equal(book.merge(S, "50123", "acked", 2), true);
  assert.equal(book.merge(S, "50123", "delivered", 1), false); // an older REST answer
  assert.equal(book.merge(S, "50123", "pending", 0), false);
  assert.equal(book.statuses(S)["50123"].status, "acked");
  assert.equal(book.merge(S, "50123", "executed", 3), true);
  assert.equal(book.merge(S, "50123", "rejected", 4), false); // final stays final
  assert.equal(book.merge(S, "50123", "executed", 5), false); // a repeat changes nothing
  assert.deepEqual(book.statuses(S), { 50123: { status: "executed", at: 3, detail: null } });
});

test("a late execution overtakes expired; expired does not undo it", () => {
  const book = new DeliveryBook();
  book.merge(S, "1", "expired");
  assert.equal(book.merge(S, "1", "executed"), true);
  assert.equal(book.merge(S, "1", "expired"), false);
  assert.equal(book.merge(S, "2", "rejected"), true);
  assert.equal(book.merge(S, "2", "expired"), false);
  assert.equal(RANK.executed, RANK.rejected);
});

test("accounts are independent; unknown statuses and bad ids are ignored", () => {
  const book = new DeliveryBook();
  book.merge(S, "1", "executed");
  book.merge(S, "2", "delivered");
  assert.equal(book.merge(S, "3", "bogus"), false);
  assert.equal(book.merge(42, "3", "acked"), false);
  assert.deepEqual(Object.keys(book.statuses(S)).sort(), ["1", "2"]);
  assert.deepEqual(book.statuses("unknown"), {});
});

test("REST pages merge every delivery", () => {
  const book = new DeliveryBook();
  book.merge(S, "1", "executed", 9);
  const changed = book.mergeSignals([
    { id: S, deliveries: [{ account: "1", status: "acked", updatedAt: 5 }, { account: "2", status: "acked", updatedAt: 6, detail: null }] },
    { id: "other", deliveries: [] },
  ]);
  assert.equal(changed, true);
  assert.equal(book.statuses(S)["1"].status, "executed");
  assert.equal(book.statuses(S)["2"].status, "acked");
  assert.equal(book.mergeSignals([{ id: S, deliveries: [{ account: "2", status: "delivered" }] }]), false);
});

test("the book is bounded: the oldest signals are forgotten first", () => {
  const book = new DeliveryBook(3);
  for (const id of ["a", "b", "c", "d"]) book.merge(id, "1", "pending");
  assert.deepEqual([...book.bySignal.keys()], ["b", "c", "d"]);
});

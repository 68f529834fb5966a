// Delivery status per (signal, account), merged from two sources that may arrive in any order:
// `system:signals` status pushes (live) and `GET /api/v1/signals` (after every resubscribe, to
// cover what happened while the page was away). A status only moves forward (docs/protocol.md,
// "Delivery status"), so an older REST answer never undoes a newer push.

/** Order of the statuses; `executed` and `rejected` are final, a late execution overtakes `expired`. */
export const RANK = Object.freeze({ pending: 0, delivered: 1, acked: 2, expired: 3, executed: 4, rejected: 4 });

export class DeliveryBook {
  /** @param {number} max - signals kept (the oldest are forgotten first) */
  constructor(max = 5000) {
    this.max = max;
    this.bySignal = new Map(); // signalId -> Map(account -> {status, at, detail})
  }

  /** Apply one status; returns whether anything changed. */
  merge(signalId, account, status, at = null, detail = null) {
    if (!(status in RANK) || typeof signalId !== "string" || typeof account !== "string") return false;
    let accounts = this.bySignal.get(signalId);
    if (!accounts) {
      accounts = new Map();
      this.bySignal.set(signalId, accounts);
      if (this.bySignal.size > this.max) this.bySignal.delete(this.bySignal.keys().next().value);
    }
    const known = accounts.get(account);
    if (known && (RANK[known.status] >= RANK[status] || RANK[known.status] === RANK.executed)) return false;
    accounts.set(account, { status, at, detail });
    return true;
  }

  /** Merge the `deliveries` of every signal in a REST page; returns whether anything changed. */
  mergeSignals(items) {
    let changed = false;
    for (const s of items) {
      for (const d of s.deliveries ?? []) changed = this.merge(s.id, d.account, d.status, d.updatedAt, d.detail) || changed;
    }
    return changed;
  }

  /** `{account: {status, at, detail}}` known for a signal (empty if none). */
  statuses(signalId) {
    return Object.fromEntries(this.bySignal.get(signalId) ?? []);
  }
}

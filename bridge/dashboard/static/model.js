// The dashboard's state: pure data structures, no DOM. Everything is keyed by id so that a REST
// reload after a reconnect merges with what live channels delivered, never duplicating a row.

// Delivery status moves forward only (docs/protocol.md, "Delivery status"); a late execution
// report overtakes `expired`; executed and rejected are final.
export const STATUS_RANK = Object.freeze({ pending: 0, delivered: 1, acked: 2, expired: 3, executed: 4, rejected: 4 });
export const FINAL = new Set(["executed", "rejected"]);

function rank(status) {
  return STATUS_RANK[status] ?? -1;
}

// Dropped ids stay in SortedIds' array until this many have gathered, then go in one splice.
// Dropping them one by one (`splice(0, 1)` on a 5,000-id array for every signal and event past the
// cap) cost 30 µs each: 6 ms of every 100 ms batch at 1,000 signals/s, the page's largest cost.
const COMPACT_AFTER = 1024;

/** Ids kept sorted by `(key, tie, id)`, where new items are nearly always the newest. */
class SortedIds {
  constructor(keyOf, tieOf = () => 0) {
    this.keyOf = keyOf;
    this.tieOf = tieOf;
    this._ids = [];
    this._head = 0; // ids before this index have been dropped
  }
  /** Oldest first (a copy). */
  get ids() {
    return this._ids.slice(this._head);
  }
  /** The i-th id counted from the newest (0 = newest). */
  newest(i) {
    return this._ids[this._ids.length - 1 - i];
  }
  insert(id) {
    const ids = this._ids;
    let lo = ids.length;
    // Live items land last; REST pages of older items land further in, by binary search.
    if (lo > this._head && this._cmp(ids[lo - 1], id) > 0) {
      let a = this._head;
      let b = lo;
      while (a < b) {
        const m = (a + b) >>> 1;
        if (this._cmp(ids[m], id) > 0) b = m;
        else a = m + 1;
      }
      lo = a;
    }
    ids.splice(lo, 0, id);
  }
  _cmp(x, y) {
    const kx = this.keyOf(x);
    const ky = this.keyOf(y);
    if (kx !== ky) return kx < ky ? -1 : 1;
    const tx = this.tieOf(x);
    const ty = this.tieOf(y);
    if (tx !== ty) return tx < ty ? -1 : 1;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  dropOldest(n) {
    const dropped = this._ids.slice(this._head, this._head + n);
    this._head += dropped.length;
    if (this._head >= COMPACT_AFTER) {
      this._ids.splice(0, this._head);
      this._head = 0;
    }
    return dropped;
  }
  get length() {
    return this._ids.length - this._head;
  }
}

/** Signals with per-account delivery status; capped to the newest `cap`. */
export class SignalBook {
  constructor(cap = 5000) {
    this.cap = cap;
    this.byId = new Map();
    // Same millisecond: the channel offset keeps publication order.
    this.order = new SortedIds(
      (id) => this.byId.get(id).createdAt,
      (id) => this.byId.get(id).offset ?? -1,
    );
    this.orphans = new Map(); // signalId -> status updates that arrived before the signal
    this.version = 0;
    this.seen = 0; // distinct signals ever added
  }

  get size() {
    return this.byId.size;
  }

  /** Newest first: the i-th row of the table. */
  at(i) {
    return this.byId.get(this.order.newest(i));
  }

  /** A signal from `system:signals` ({...payload, offset, channel}) or a REST item. */
  upsert(raw) {
    if (!raw || typeof raw.id !== "string") return null;
    const fromRest = raw.payload && typeof raw.payload === "object";
    const p = fromRest ? raw.payload : raw;
    let rec = this.byId.get(raw.id);
    if (!rec) {
      rec = {
        id: raw.id,
        strategy: String(raw.strategy ?? p.strategy ?? ""),
        channel: raw.channel ?? `signals:${p.strategy}`,
        offset: raw.offset ?? null,
        symbol: p.symbol ?? "",
        action: p.action ?? "",
        side: p.side ?? "",
        volume: p.volume ?? null,
        accounts: Array.isArray(raw.accounts ?? p.accounts) ? [...(raw.accounts ?? p.accounts)] : [],
        groups: Array.isArray(raw.groups ?? p.groups) ? [...(raw.groups ?? p.groups)] : [],
        createdAt: Number(raw.createdAt ?? p.createdAt ?? Date.now()),
        expiresAt: raw.expiresAt ?? p.expiresAt ?? null,
        deliveries: new Map(),
        v: 0, // bumped on every change of what its row shows (vtable.js skips unchanged rows)
      };
      for (const a of rec.accounts) rec.deliveries.set(a, { status: "pending", times: {}, detail: null });
      this.byId.set(rec.id, rec);
      this.order.insert(rec.id);
      this.seen += 1;
      const waiting = this.orphans.get(rec.id);
      if (waiting) {
        this.orphans.delete(rec.id);
        for (const u of waiting) this._apply(rec, u.account, u.status, u.at, u.detail);
      }
      this._trim();
    } else if (rec.offset === null && raw.offset != null) {
      rec.offset = raw.offset;
      rec.v += 1;
    }
    if (Array.isArray(raw.deliveries)) {
      for (const d of raw.deliveries) {
        for (const [status, at] of Object.entries(d.times || {})) this._apply(rec, d.account, status, at, null);
        this._apply(rec, d.account, d.status, d.updatedAt ?? (d.times || {})[d.status] ?? null, d.detail ?? null);
      }
    }
    this.version += 1;
    return rec;
  }

  /** A `{signalId, account, status, at, detail?}` change; kept aside until its signal is known. */
  status(update) {
    if (!update || typeof update.signalId !== "string") return;
    const rec = this.byId.get(update.signalId);
    if (!rec) {
      let list = this.orphans.get(update.signalId);
      if (!list) {
        if (this.orphans.size >= this.cap) this.orphans.delete(this.orphans.keys().next().value);
        this.orphans.set(update.signalId, (list = []));
      }
      list.push(update);
      return;
    }
    this._apply(rec, update.account, update.status, update.at, update.detail ?? null);
    this.version += 1;
  }

  _apply(rec, account, status, at, detail) {
    if (typeof account !== "string" || !(status in STATUS_RANK)) return;
    rec.v += 1;
    let d = rec.deliveries.get(account);
    if (!d) rec.deliveries.set(account, (d = { status: "pending", times: {}, detail: null }));
    if (at != null && d.times[status] == null) d.times[status] = Number(at);
    if (FINAL.has(d.status)) return;
    if (rank(status) > rank(d.status)) {
      d.status = status;
      if (detail) d.detail = detail;
    }
  }

  _trim() {
    const over = this.order.length - this.cap;
    if (over > 0) for (const id of this.order.dropOldest(over)) this.byId.delete(id);
  }
}

/** End-to-end latency of one delivery: from the signal's creation to its final report (ms). */
export function deliveryLatency(rec, d) {
  const end = d.times.executed ?? d.times.rejected;
  return end != null && Number.isFinite(rec.createdAt) ? Math.max(0, end - rec.createdAt) : null;
}

/** The slowest end-to-end latency of a signal across its finished deliveries (ms), or null. */
export function signalLatency(rec) {
  let worst = null;
  for (const d of rec.deliveries.values()) {
    const l = deliveryLatency(rec, d);
    if (l != null && (worst === null || l > worst)) worst = l;
  }
  return worst;
}

/** Trade events keyed by id, newest first, capped; with a cached filtered view. */
export class EventLog {
  constructor(cap = 5000) {
    this.cap = cap;
    this.byId = new Map();
    this.order = new SortedIds(
      (id) => this.byId.get(id).ts,
      (id) => this.byId.get(id).seq,
    );
    this.version = 0;
    this.filter = { account: "", kind: "", signalId: "" };
    this._view = null;
    this._viewVersion = -1;
  }

  get size() {
    return this.byId.size;
  }

  /** Newest first: the i-th event, filter or not. */
  at(i) {
    return this.byId.get(this.order.newest(i));
  }

  /** Whether a filter is set (without one, the view is the whole log: `at(i)`, `size`). */
  get filtered() {
    const { account, kind, signalId } = this.filter;
    return !!(account || kind || signalId);
  }

  /** A live payload (system:events) or a REST item ({seq, id, kind, account, ts, payload}). */
  add(raw) {
    if (!raw || typeof raw.id !== "string" || this.byId.has(raw.id)) return false;
    const p = raw.payload && typeof raw.payload === "object" ? raw.payload : raw;
    const ev = {
      id: raw.id,
      kind: String(raw.kind ?? p.kind ?? ""),
      account: String(raw.account ?? p.account ?? ""),
      signalId: raw.signalId ?? p.signalId ?? null,
      ts: Number(raw.ts ?? p.ts ?? Date.now()),
      seq: Number.isFinite(raw.seq) ? raw.seq : -1,
      payload: p,
    };
    this.byId.set(ev.id, ev);
    this.order.insert(ev.id);
    const over = this.order.length - this.cap;
    if (over > 0) for (const id of this.order.dropOldest(over)) this.byId.delete(id);
    this.version += 1;
    return true;
  }

  setFilter(f) {
    this.filter = { ...this.filter, ...f };
    this._viewVersion = -1;
  }

  /** Newest-first events passing the filter (recomputed only after a change). */
  view() {
    if (this._viewVersion === this.version && this._view) return this._view;
    const { account, kind, signalId } = this.filter;
    const out = [];
    for (let i = 0; i < this.order.length; i += 1) {
      const e = this.at(i);
      if (account && e.account !== account) continue;
      if (kind && e.kind !== kind) continue;
      if (signalId && !(e.signalId || "").startsWith(signalId)) continue;
      out.push(e);
    }
    this._view = out;
    this._viewVersion = this.version;
    return out;
  }
}

/** One line per MT5 account: REST rows merged with live `account` events and EA presence. */
export class AccountBook {
  constructor() {
    this.byLogin = new Map();
    this.version = 0;
  }
  _get(login) {
    let a = this.byLogin.get(login);
    if (!a) {
      a = {
        account: login, connected: false, lastSeen: null, balance: null, equity: null, margin: null,
        freeMargin: null, currency: null, positions: [], updatedAt: null, paused: false, riskState: null,
      };
      this.byLogin.set(login, a);
    }
    return a;
  }
  fromRest(items) {
    for (const it of items || []) {
      if (typeof it.account !== "string") continue;
      const a = this._get(it.account);
      // A live snapshot newer than the REST row wins.
      if (a.updatedAt == null || (it.updatedAt ?? 0) >= a.updatedAt) {
        for (const k of ["balance", "equity", "margin", "freeMargin", "currency", "updatedAt"]) a[k] = it[k] ?? a[k];
        a.positions = Array.isArray(it.positions) ? it.positions : a.positions;
      }
      a.connected = !!it.connected;
      a.paused = !!it.paused;
      a.lastSeen = Math.max(a.lastSeen ?? 0, it.lastSeen ?? 0) || null;
    }
    this.version += 1;
  }
  event(ev) {
    if (!ev || typeof ev.account !== "string" || !ev.account) return;
    const a = this._get(ev.account);
    a.lastSeen = Math.max(a.lastSeen ?? 0, Number(ev.ts) || 0) || a.lastSeen;
    if (ev.kind === "account" && (a.updatedAt == null || ev.ts >= a.updatedAt)) {
      for (const k of ["balance", "equity", "margin", "freeMargin", "currency"]) if (k in ev) a[k] = ev[k];
      if (Array.isArray(ev.positions)) a.positions = ev.positions;
      // The EA's daily loss limit: "daily_loss" while it pauses opening, "active" once it ended.
      if (typeof ev.riskState === "string") a.riskState = ev.riskState;
      a.updatedAt = ev.ts;
    }
    this.version += 1;
  }
  presence(conn, up) {
    if (!conn || conn.role !== "ea") return;
    for (const login of conn.accounts || []) {
      if (login === "*") continue;
      const a = this._get(login);
      a.connected = up || a.connected; // a disconnect is confirmed by the next REST poll (other EAs may hold it)
      if (up) a.lastSeen = Date.now();
    }
    this.version += 1;
  }
  setPaused(logins) {
    const paused = new Set(logins);
    for (const a of this.byLogin.values()) a.paused = paused.has(a.account);
    this.version += 1;
  }
  list() {
    return [...this.byLogin.values()].sort((x, y) => (x.account < y.account ? -1 : x.account > y.account ? 1 : 0));
  }
}

/** Live connections; message rates from successive REST samples of messagesIn/messagesOut. */
export class ConnectionBook {
  constructor() {
    this.byId = new Map();
    this.version = 0;
    this._prev = new Map(); // id -> {t, in, out}
  }
  fromRest(items, now = Date.now()) {
    const seen = new Set();
    for (const c of items || []) {
      if (typeof c.id !== "string") continue;
      seen.add(c.id);
      const prev = this._prev.get(c.id);
      let inRate = null;
      let outRate = null;
      if (prev && now > prev.t) {
        const dt = (now - prev.t) / 1000;
        inRate = Math.max(0, (c.messagesIn - prev.in) / dt);
        outRate = Math.max(0, (c.messagesOut - prev.out) / dt);
      }
      this._prev.set(c.id, { t: now, in: c.messagesIn, out: c.messagesOut });
      this.byId.set(c.id, { ...c, inRate, outRate, at: now });
    }
    for (const id of [...this.byId.keys()]) if (!seen.has(id)) this.byId.delete(id);
    for (const id of [...this._prev.keys()]) if (!seen.has(id)) this._prev.delete(id);
    this.version += 1;
  }
  event(ev, now = Date.now()) {
    const c = ev && ev.connection;
    if (!c || typeof c.id !== "string") return;
    if (ev.event === "disconnected") {
      this.byId.delete(c.id);
      this._prev.delete(c.id);
    } else {
      this.byId.set(c.id, { ...this.byId.get(c.id), ...c, at: now });
    }
    this.version += 1;
  }
  list() {
    return [...this.byId.values()].sort((a, b) => (a.role || "").localeCompare(b.role || "") || a.id.localeCompare(b.id));
  }
}

/** The last `cap` one-second health samples, deduplicated by timestamp. */
export class HealthSeries {
  constructor(cap = 300) {
    this.cap = cap;
    this.samples = [];
    this.version = 0;
  }
  add(s) {
    if (!s || !Number.isFinite(s.ts)) return;
    const last = this.samples[this.samples.length - 1];
    if (last && s.ts <= last.ts) {
      if (this.samples.some((x) => x.ts === s.ts)) return;
      this.samples.push(s);
      this.samples.sort((a, b) => a.ts - b.ts);
    } else {
      this.samples.push(s);
    }
    if (this.samples.length > this.cap) this.samples.splice(0, this.samples.length - this.cap);
    this.version += 1;
  }
  latest() {
    return this.samples[this.samples.length - 1] || null;
  }
  series(key) {
    return this.samples.map((s) => Number(s[key]) || 0);
  }
}

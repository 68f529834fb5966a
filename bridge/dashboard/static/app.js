// The operators' dashboard: login, live views fed by system:* channels, REST reloads after every
// (re)connect, operator controls for admins. Everything untrusted is written with textContent.
//
// Flow: the WebSocket and the client live in a Web Worker (feed-worker.js, through feed.js), which
// hands the channels' payloads over in batches, at most 10 a second; a batch goes into an inbox;
// one requestAnimationFrame drains the inbox into the models (model.js, keyed by id) and repaints
// only what changed. Tables are virtualised.

import { State } from "./mtbridge.js";
import { Feed } from "./feed.js";
import {
  AccountBook,
  FINAL,
  ConnectionBook,
  EventLog,
  HealthSeries,
  SignalBook,
  deliveryLatency,
  signalLatency,
} from "./model.js";
import { VirtualTable } from "./vtable.js";
import { drawLineChart } from "./charts.js";

const TOKEN_KEY = "mtbridge.token";
const THEME_KEY = "mtbridge.theme";
const SIGNAL_CAP = 5000;
const EVENT_CAP = 5000;
const REST_PAGE = 500;
const CONNECTIONS_POLL_MS = 2000;
const ACCOUNTS_POLL_MS = 5000;
const SUMMARY_EVERY_MS = 500;
// The signal and event tables are redrawn at most this often (10 per second). Under a flood their
// rows change every frame; drawing them at 60 Hz shows nobody more (rows scroll past faster than
// anyone reads them) but makes the browser repaint both tables in every frame (docs/dashboard.md).
const TABLE_EVERY_MS = 100;
const CONFIRM_MS = 3000;
// The live channels, and the kind each one's payloads are batched as (apply() below).
const CHANNELS = {
  "system:signals": "signals",
  "system:events": "events",
  "system:connections": "connections",
  "system:health": "health",
};

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clock(ms) {
  if (!Number.isFinite(ms)) return "–";
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function num(v, digits = 2) {
  return v === null || v === undefined || !Number.isFinite(Number(v)) ? "–" : Number(v).toFixed(digits);
}

function ms(v) {
  if (v === null || v === undefined) return "–";
  return v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`;
}

function bytes(v) {
  if (!Number.isFinite(v)) return "–";
  if (v < 1024) return `${v} B`;
  if (v < 1048576) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / 1048576).toFixed(1)} MiB`;
}

// -- state ----------------------------------------------------------------------------------------

const app = {
  token: null,
  me: null,
  client: null,
  codes: null,
  signals: new SignalBook(SIGNAL_CAP),
  events: new EventLog(EVENT_CAP),
  accounts: new AccountBook(),
  connections: new ConnectionBook(),
  health: new HealthSeries(300),
  control: { accounts: [], strategies: [] },
  controlVersion: 0,
  inbox: [],
  frameRequested: false,
  drawn: {},
  tables: {},
  stats: { frames: 0, applied: 0, reloads: 0, lastFrameAt: 0, lastSummaryAt: 0, lastTablesAt: 0, lastAccountsAt: 0, finalStatuses: 0 },
  // Status changes on screen: from the hub's record (`at`) to the end of the frame that redrew the
  // signal table after them, in 10 ms buckets up to 10 s (the last bucket holds everything slower). For
  // the benchmark.
  statusLag: { count: 0, max: 0, over1s: 0, buckets: new Uint32Array(1001) },
  // The same, from the message's arrival in the page's feed worker: the page's own share.
  pageLag: { count: 0, max: 0, over1s: 0, buckets: new Uint32Array(1001) },
  // Status changes applied to the models but not yet drawn: [hub's at, arrival (both epoch ms),
  // final]. Counted (statusLag, pageLag, finalStatuses) by the frame that redraws the signal table.
  undrawn: [],
  // The page's own work per frame (applying the inbox, rendering), in 1 ms buckets up to 1 s.
  frameWork: { count: 0, buckets: new Uint32Array(1001) },
  timers: [],
  refreshWaiter: null,
};

// -- REST -----------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, body) {
    super((body && body.detail && (body.detail.message || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${app.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!res.ok) throw new HttpError(res.status, data);
  return data;
}

// -- login ----------------------------------------------------------------------------------------

async function login(token) {
  app.token = token;
  const me = await api("GET", "/api/v1/me");
  if (me.role !== "dashboard" && me.role !== "admin") {
    throw new Error(`role ${me.role} cannot use the dashboard`);
  }
  app.me = me;
  sessionStorage.setItem(TOKEN_KEY, token);
  return me;
}

function showLogin(message) {
  document.body.dataset.view = "login";
  $("#login-error").textContent = message || "";
  $("#token-input").focus();
}

async function onLoginSubmit(ev) {
  ev.preventDefault();
  const token = $("#token-input").value.trim();
  if (!token) return;
  $("#login-error").textContent = "";
  try {
    await login(token);
    $("#token-input").value = "";
    if (app.client) {
      // A session ended for good (revoked, invalid): start afresh with the new token.
      location.reload();
      return;
    }
    start();
  } catch (err) {
    app.token = null;
    showLogin(err.status === 401 ? "Token refused by the hub (invalid, expired or revoked)." : String(err.message || err));
  }
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (app.client) app.client.close();
  location.reload();
}

// -- start ----------------------------------------------------------------------------------------

function start() {
  document.body.dataset.view = "dashboard";
  const isAdmin = app.me.role === "admin";
  document.body.dataset.role = app.me.role;
  $("#who").textContent = `${app.me.sub} · ${app.me.role}`;
  // Operator controls exist only for admins: a dashboard token gets no such elements at all.
  if (isAdmin) buildControls();
  buildTables();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const client = new Feed(url, { token: app.token, refreshToken: askForToken, channels: CHANNELS });
  app.client = client;
  client.on("state", ({ state }) => indicator(state));
  client.on("close", (c) => {
    indicator(client.state, c);
    if (!c.reconnect && c.code >= 4500 && c.code <= 4999) {
      // Terminal (invalid, revoked, forbidden): this token will not work again.
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(sessionEnded(c.code, c.reason));
    }
  });
  client.on("open", () => reloadAll());
  client.on("warning", (w) => {
    if (w.code === "token_expiring") banner(`Token expires at ${clock(w.expiresAt * 1000)}: paste a new one.`, true);
  });
  client.on("token", () => banner(""));
  client.on("batch", (items) => {
    for (const item of items) app.inbox.push(item);
    schedule();
  });
  client.connect(); // a terminal close is handled by the close listener
  app.timers.push(setInterval(pollConnections, CONNECTIONS_POLL_MS));
  app.timers.push(setInterval(pollAccounts, ACCOUNTS_POLL_MS));
  // rAF does not run in hidden tabs: drain there on a timer so the inbox cannot grow without bound.
  app.timers.push(
    setInterval(() => {
      if (app.inbox.length && performance.now() - app.stats.lastFrameAt > 1000) frame(performance.now());
    }, 1000),
  );
  schedule();
}

function reportError(err) {
  console.warn("mtbridge:", err && err.message);
}

function askForToken() {
  // The hook the client calls on token_expiring (and before reconnecting after 4004).
  return new Promise((resolve) => {
    app.refreshWaiter = resolve;
  });
}

function banner(text, withInput = false) {
  const b = $("#banner");
  b.hidden = !text;
  $("#banner-text").textContent = text;
  $("#refresh-form").hidden = !withInput;
}

function closeText(code, reason) {
  const entry = app.codes && app.codes.closeCodes[String(code)];
  return `${code} ${entry ? entry.reason : reason || ""}`.trim();
}

function indicator(state, close) {
  const box = $("#conn-state");
  box.dataset.state = state;
  const label = {
    [State.IDLE]: "idle",
    [State.CONNECTING]: "connecting…",
    [State.AUTHENTICATING]: "authenticating…",
    [State.OPEN]: "live",
    [State.RECONNECTING]: "reconnecting…",
    [State.CLOSED]: "disconnected",
  }[state];
  let text = label;
  const last = close || (app.client && app.client.lastClose);
  if ((state === State.RECONNECTING || state === State.CLOSED) && last) {
    text += ` (${closeText(last.code, last.reason)}${close && close.delayMs != null ? `, retry in ${(close.delayMs / 1000).toFixed(1)} s` : ""})`;
  }
  $("#conn-text").textContent = text;
}

// -- loading state over REST ----------------------------------------------------------------------

async function reloadAll() {
  app.stats.reloads += 1;
  const jobs = [
    reloadSignals(),
    reloadEvents(),
    api("GET", "/api/v1/health/history").then((r) => r.items.forEach((s) => app.health.add(s))),
    pollAccounts(),
    pollConnections(),
  ];
  const results = await Promise.allSettled(jobs);
  for (const r of results) if (r.status === "rejected") onRestError(r.reason);
  schedule();
}

function page(path, cursor) {
  return api("GET", `${path}${path.includes("?") ? "&" : "?"}limit=${REST_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
}

/**
 * Newest signals first. On the first load one page is enough; after a reconnect, page back until
 * the pages bring nothing new and reach past the oldest signal still in flight (its status may
 * have moved while we were away), or until the table's cap.
 */
async function reloadSignals() {
  const book = app.signals;
  const firstLoad = book.size === 0;
  let oldestOpen = Infinity;
  for (const s of book.byId.values()) {
    for (const d of s.deliveries.values()) {
      if (d.status !== "executed" && d.status !== "rejected" && d.status !== "expired") {
        oldestOpen = Math.min(oldestOpen, s.createdAt);
        break;
      }
    }
  }
  let cursor = null;
  let fetched = 0;
  for (;;) {
    const r = await page("/api/v1/signals", cursor);
    let fresh = 0;
    let oldest = Infinity;
    for (const item of r.items) {
      if (!book.byId.has(item.id)) fresh += 1;
      book.upsert(item);
      oldest = Math.min(oldest, Number(item.createdAt));
    }
    fetched += r.items.length;
    cursor = r.nextCursor;
    if (firstLoad || !cursor || !r.items.length || fetched >= book.cap) return;
    if (fresh === 0 && oldest <= oldestOpen) return;
  }
}

/** Newest events first; after a reconnect, page back until a page holds an event already known. */
async function reloadEvents() {
  const log = app.events;
  const firstLoad = log.size === 0;
  let cursor = null;
  let fetched = 0;
  for (;;) {
    const r = await page("/api/v1/events", cursor);
    let known = 0;
    for (const item of r.items) {
      if (log.byId.has(item.id)) known += 1;
      else if (log.add(item)) app.accounts.event(item.payload || item);
    }
    fetched += r.items.length;
    cursor = r.nextCursor;
    if (firstLoad || known || !cursor || !r.items.length || fetched >= log.cap) return;
  }
}

async function pollConnections() {
  if (!app.client || app.client.state !== State.OPEN) return;
  try {
    const r = await api("GET", "/api/v1/connections");
    app.connections.fromRest(r.items);
    schedule();
  } catch (err) {
    onRestError(err);
  }
}

async function pollAccounts() {
  if (!app.client || app.client.state !== State.OPEN) return;
  try {
    const [acc, ctl] = await Promise.all([api("GET", "/api/v1/accounts"), api("GET", "/api/v1/control")]);
    app.accounts.fromRest(acc.items);
    app.control = ctl;
    app.controlVersion += 1;
    app.accounts.setPaused(ctl.accounts || []);
    schedule();
  } catch (err) {
    onRestError(err);
  }
}

// A REST 401 and the WebSocket close that follows it say the same thing (a revocation reaches the
// REST API at once and the live connection within a second): whichever comes first, the login form
// shows the same words, with the close code the hub uses for that reason.
const CLOSE_FOR_AUTH_ERROR = { token_revoked: 4501, token_expired: 4004, token_invalid: 4500 };

function sessionEnded(code, reason) {
  return `The hub closed the session: ${closeText(code, reason)}. Log in with another token.`;
}

function onRestError(err) {
  if (err && err.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (app.client) app.client.close();
    const detail = err.body && err.body.detail;
    const code = detail && typeof detail === "object" ? CLOSE_FOR_AUTH_ERROR[detail.code] : undefined;
    showLogin(code ? sessionEnded(code) : "The hub no longer accepts this token; log in again.");
    return;
  }
  reportError(err);
}

// -- the frame loop -------------------------------------------------------------------------------

function schedule() {
  if (app.frameRequested) return;
  app.frameRequested = true;
  requestAnimationFrame(frame);
}

function frame(now) {
  const began = performance.now();
  app.frameRequested = false;
  app.stats.frames += 1;
  app.stats.lastFrameAt = performance.now();
  const batch = app.inbox;
  app.inbox = [];
  for (const [kind, p, arrived] of batch) {
    apply(kind, p);
    if (kind === "signals" && p && p.event === "status") app.undrawn.push([p.at, arrived, FINAL.has(p.status)]);
  }
  app.stats.applied += batch.length;
  const drewTables = render(now);
  const work = app.frameWork;
  work.count += 1;
  work.buckets[Math.min(1000, Math.floor(performance.now() - began))] += 1;
  if (drewTables && app.undrawn.length) {
    const shown = performance.timeOrigin + performance.now();
    for (const [at, arrived, final] of app.undrawn) {
      if (final) app.stats.finalStatuses += 1;
      if (!Number.isFinite(at)) continue;
      record(app.statusLag, shown - at);
      record(app.pageLag, shown - arrived);
    }
    app.undrawn = [];
  }
}

function record(lag, ms) {
  const l = Math.max(0, ms);
  lag.count += 1;
  if (l > lag.max) lag.max = l;
  if (l > 1000) lag.over1s += 1;
  lag.buckets[Math.min(1000, Math.floor(l / 10))] += 1;
}

function lagStats(lag) {
  return { count: lag.count, max: Math.round(lag.max), over1s: lag.over1s, p99: lag.count ? percentile(lag, 0.99, 10) : 0 };
}

/** The q-quantile of a bucketed histogram, as the upper edge of its bucket. */
function percentile({ count, buckets }, q, width) {
  let seen = 0;
  for (let i = 0; i < buckets.length; i += 1) {
    seen += buckets[i];
    if (seen >= q * count) return (i + 1) * width;
  }
  return 0;
}

function apply(kind, p) {
  if (!p || typeof p !== "object") return;
  switch (kind) {
    case "signals":
      if (p.event === "signal") app.signals.upsert(p.signal);
      else if (p.event === "status") app.signals.status(p);
      else if (p.event === "control") pollAccounts();
      return;
    case "events":
      if (app.events.add(p)) app.accounts.event(p);
      return;
    case "connections":
      app.connections.event(p);
      app.accounts.presence(p.connection, p.event === "connected");
      return;
    case "health":
      app.health.add(p);
      return;
  }
}

function changed(key, version) {
  if (app.drawn[key] === version) return false;
  app.drawn[key] = version;
  return true;
}

/**
 * Repaints what changed; returns whether the signal table was redrawn.
 *
 * At most one of the signal table, the event table, the status totals and the accounts per
 * frame: under a flood every visible row of both tables changes at each redraw, and laying out
 * both tables (about 550 boxes) in one frame took 3 ms at the median and up to 16 ms on a loaded
 * host; those were the frames that missed their vsync. A panel that must wait is drawn in the
 * next frame.
 */
function render(now) {
  const t = app.tables;
  if (!t.signals) return false; // not logged in yet
  let drewTables = false;
  let busy = true;
  if (now - app.stats.lastTablesAt >= TABLE_EVERY_MS) {
    app.stats.lastTablesAt = now;
    renderSignalTable();
    drewTables = true;
    app.eventTableDue = true;
  } else if (app.eventTableDue) {
    app.eventTableDue = false;
    renderEventTable();
  } else {
    busy = false;
    if (tablesStale()) schedule(); // drawn at the next frame past TABLE_EVERY_MS, even if nothing else arrives
  }
  if (!busy && now - app.stats.lastSummaryAt > SUMMARY_EVERY_MS && changed("summary", app.signals.version)) {
    app.stats.lastSummaryAt = now;
    renderSummary();
    busy = true;
  } else if (app.drawn.summary !== app.signals.version) {
    schedule(); // the totals catch up within SUMMARY_EVERY_MS even if nothing else arrives
  }
  // Accounts change with every trade event (last seen); at most twice a second is plenty.
  if (!busy && now - app.stats.lastAccountsAt > SUMMARY_EVERY_MS && changed("accounts", app.accounts.version)) {
    app.stats.lastAccountsAt = now;
    renderAccounts();
    busy = true;
  } else if (app.drawn.accounts !== app.accounts.version) {
    schedule();
  }
  if (app.eventTableDue) schedule();
  if (changed("connections", app.connections.version)) renderConnections();
  if (changed("health", app.health.version)) renderHealth();
  if (changed("control", app.controlVersion)) renderControlState();
  return drewTables;
}

function tablesStale() {
  const t = app.tables;
  return (
    t.signals._dirty ||
    t.events._dirty ||
    app.drawn.signals !== app.signals.version ||
    app.drawn.events !== app.events.version ||
    app.drawn.eventFilter !== app.events.filter
  );
}

/** The signal table: only the rows in view are (re)filled (vtable.js). */
function renderSignalTable() {
  const t = app.tables;
  if (changed("signals", app.signals.version)) {
    t.signals.setData(app.signals.size, (i) => app.signals.at(i));
    $("#signals-count").textContent = `${app.signals.size} shown · ${app.signals.seen} seen`;
  }
  if (t.signals._dirty) t.signals.render();
}

/** The event table, likewise. */
function renderEventTable() {
  const t = app.tables;
  // The filtered view is rebuilt only when the log or the filter changed (setFilter makes a new
  // object), and not at all without a filter: the table then reads the log itself.
  const logChanged = changed("events", app.events.version);
  if (changed("eventFilter", app.events.filter) || logChanged) {
    const log = app.events;
    const view = log.filtered ? log.view() : null;
    if (view) t.events.setData(view.length, (i) => view[i]);
    else t.events.setData(log.size, (i) => log.at(i));
    $("#events-count").textContent = `${view ? view.length : log.size} of ${log.size}`;
  }
  if (t.events._dirty) t.events.render();
}

// -- tables ---------------------------------------------------------------------------------------

function cells(row, n) {
  if (row.childElementCount !== n) {
    row.replaceChildren(...Array.from({ length: n }, () => el("span", "c")));
  }
  return row.children;
}

function fillSignal(row, s) {
  const c = cells(row, 7);
  c[0].textContent = clock(s.createdAt);
  c[1].textContent = s.strategy;
  c[2].textContent = s.symbol || "–";
  c[3].textContent = [s.action, s.side, s.volume ?? ""].filter((x) => x !== "").join(" ");
  const chips = [];
  for (const [account, d] of s.deliveries) {
    const chip = el("span", `chip st-${d.status}`);
    const l = deliveryLatency(s, d);
    chip.textContent = `${account} ${d.status}${l != null ? " " + ms(l) : ""}`;
    chip.title = Object.entries(d.times).map(([k, v]) => `${k} ${clock(v)}`).join("\n") + (d.detail ? `\n${d.detail}` : "");
    chip.dataset.account = account;
    chip.dataset.status = d.status;
    chips.push(chip);
  }
  c[4].replaceChildren(...chips);
  c[5].textContent = ms(signalLatency(s));
  c[6].textContent = s.offset ?? "–";
  row.title = s.id;
}

// A rejection's message with its label from codes.json ("max_open_positions" → "max open positions");
// trade-server refusals ("trade_server: ...") and unknown reasons are shown as sent.
function rejectLabel(message) {
  const r = app.codes && app.codes.rejectReasons && app.codes.rejectReasons[message];
  return r ? r.label : message;
}

function fillEvent(row, e) {
  const c = cells(row, 6);
  const p = e.payload || {};
  c[0].textContent = clock(e.ts);
  c[1].textContent = e.kind;
  c[1].className = `c kind-${e.kind}`;
  c[2].textContent = e.account;
  let what = "";
  if (e.kind === "deal") what = `${p.side} ${p.volume} ${p.symbol} @ ${p.price} (${p.entry}) #${p.ticket}`;
  else if (e.kind === "order") what = `${p.state} ${p.side ?? ""} ${p.volume ?? ""} ${p.symbol ?? ""}${p.message ? " · " + rejectLabel(p.message) : ""}`;
  else if (e.kind === "position") what = `${p.state} ${p.side} ${p.volume} ${p.symbol} @ ${p.priceOpen}`;
  else if (e.kind === "account") what = `balance ${num(p.balance)} equity ${num(p.equity)} margin ${num(p.margin)}${p.riskState === "daily_loss" ? " · paused: daily loss limit" : p.riskState === "active" ? " · daily loss pause ended" : ""}`;
  c[3].textContent = what;
  c[4].textContent = e.signalId ? e.signalId.slice(0, 8) : "";
  c[4].title = e.signalId || "";
  c[5].textContent = p.profit != null ? num(p.profit) : "";
  row.title = e.id;
}

function buildTables() {
  app.tables.signals = new VirtualTable($("#signals-vt"), fillSignal, (s) => s.id, (s) => s.v);
  app.tables.events = new VirtualTable($("#events-vt"), fillEvent, (e) => e.id);
  const filter = () => {
    app.events.setFilter({
      account: $("#ev-account").value.trim(),
      kind: $("#ev-kind").value,
      signalId: $("#ev-signal").value.trim(),
    });
    schedule();
  };
  for (const id of ["#ev-account", "#ev-signal"]) $(id).addEventListener("input", filter);
  $("#ev-kind").addEventListener("change", filter);
  $("#ev-csv").addEventListener("click", exportCsv);
  new ResizeObserver(() => {
    app.tables.signals.invalidate();
    app.tables.events.invalidate();
    app.drawn.health = -1;
    schedule();
  }).observe(document.body);
}

async function exportCsv() {
  const f = app.events.filter;
  const q = new URLSearchParams();
  if (f.account) q.set("account", f.account);
  if (f.kind) q.set("kind", f.kind);
  if (f.signalId) q.set("signalId", f.signalId);
  const res = await fetch(`/api/v1/events.csv?${q}`, { headers: { Authorization: `Bearer ${app.token}` } });
  if (!res.ok) return reportError(new HttpError(res.status, null));
  const url = URL.createObjectURL(await res.blob());
  const a = el("a");
  a.href = url;
  a.download = "trade-events.csv";
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function renderSummary() {
  const counts = { pending: 0, delivered: 0, acked: 0, executed: 0, rejected: 0, expired: 0 };
  for (const s of app.signals.byId.values()) for (const d of s.deliveries.values()) counts[d.status] += 1;
  for (const [k, v] of Object.entries(counts)) {
    const node = $(`#sum-${k}`);
    if (node) node.textContent = String(v);
  }
}

/** Keyed rows: a row element lives as long as its key, so buttons survive re-renders. */
function syncRows(tbody, items, keyOf, create, update) {
  const existing = new Map();
  for (const tr of tbody.children) existing.set(tr.dataset.id, tr);
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    let tr = existing.get(key);
    if (tr) existing.delete(key);
    else {
      tr = create(item);
      tr.dataset.id = key;
    }
    update(tr, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of existing.values()) tr.remove();
}

function tds(tr, n) {
  while (tr.childElementCount < n) tr.append(el("td"));
  return tr.children;
}

function armedButton(label, action) {
  // Two clicks: a destructive action needs a confirmation click within a few seconds.
  const b = el("button", "danger", label);
  b.type = "button";
  let armed = null;
  b.addEventListener("click", async () => {
    if (!armed) {
      b.textContent = "confirm?";
      b.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        b.textContent = label;
        b.classList.remove("armed");
      }, CONFIRM_MS);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.textContent = label;
    b.classList.remove("armed");
    await action();
  });
  return b;
}

function renderAccounts() {
  const isAdmin = app.me.role === "admin";
  const ncols = isAdmin ? 10 : 9;
  syncRows(
    $("#accounts-body"),
    app.accounts.list(),
    (a) => a.account,
    (a) => {
      const tr = el("tr");
      tds(tr, ncols);
      if (isAdmin) {
        const b = el("button", "ctl", "pause");
        b.type = "button";
        b.addEventListener("click", () =>
          operate({ scope: "account", account: a.account, command: b.dataset.command }),
        );
        tr.children[9].append(b);
      }
      return tr;
    },
    (tr, a) => {
      const c = tds(tr, ncols);
      c[0].textContent = a.account;
      c[1].replaceChildren(el("span", `dot ${a.connected ? "on" : "off"}`), document.createTextNode(a.connected ? " online" : " offline"));
      c[2].textContent = num(a.balance);
      c[3].textContent = num(a.equity);
      c[4].textContent = num(a.margin);
      c[5].textContent = num(a.freeMargin);
      c[6].textContent = String((a.positions || []).length);
      c[6].title = (a.positions || []).map((p) => `${p.side} ${p.volume} ${p.symbol} @ ${p.priceOpen}`).join("\n");
      c[7].textContent = ago(a.lastSeen);
      const lossPaused = a.riskState === "daily_loss";
      c[8].textContent = a.paused ? "paused" : lossPaused ? "daily loss" : "";
      c[8].className = a.paused || lossPaused ? "paused" : "";
      if (isAdmin) {
        const b = c[9].firstChild;
        b.dataset.command = a.paused || lossPaused ? "resume" : "pause";
        b.textContent = a.paused || lossPaused ? "resume" : "pause";
      }
    },
  );
  $("#accounts-count").textContent = `${app.accounts.byLogin.size}`;
}

function renderConnections() {
  const isAdmin = app.me.role === "admin";
  const ncols = isAdmin ? 9 : 8;
  const list = app.connections.list();
  syncRows(
    $("#connections-body"),
    list,
    (c) => c.id,
    (c) => {
      const tr = el("tr");
      tds(tr, ncols);
      if (isAdmin) {
        tr.children[8].append(
          armedButton("close", async () => {
            try {
              await api("DELETE", `/api/v1/connections/${encodeURIComponent(c.id)}`);
              flash(`closed ${c.id}`);
            } catch (err) {
              flash(`close failed: ${err.message}`, true);
            }
            pollConnections();
          }),
        );
      }
      return tr;
    },
    (tr, c) => {
      const td = tds(tr, ncols);
      td[0].textContent = c.role || "–";
      td[0].className = `role-${c.role}`;
      td[1].textContent = c.sub || "–";
      td[2].textContent = (c.accounts || []).join(" ") || "–";
      td[3].textContent = c.ageSeconds != null ? `${Math.round(c.ageSeconds)} s` : "–";
      td[4].textContent = bytes(c.queueBytes);
      td[5].textContent = c.inRate != null ? c.inRate.toFixed(1) : "–";
      td[6].textContent = c.outRate != null ? c.outRate.toFixed(1) : "–";
      td[7].textContent = `${c.node ? `${c.node} · ` : ""}${c.ip || ""} ${c.encoding || ""}`;
      td[7].title = `${c.id}\n${(c.subscriptions || []).join("\n")}`;
      if (app.client && c.id === app.client.connectionId) tr.classList.add("self");
    },
  );
  $("#connections-count").textContent = `${list.length}`;
}

function renderHealth() {
  const h = app.health;
  const s = h.latest();
  if (!s) return;
  const css = getComputedStyle(document.body);
  const color = (n) => css.getPropertyValue(n).trim();
  const delta = (key) => {
    const v = h.series(key);
    return v.map((x, i) => (i ? Math.max(0, x - v[i - 1]) : 0));
  };
  drawLineChart($("#ch-conn"), [{ label: "connections", values: h.series("connections"), color: color("--c1") }]);
  drawLineChart($("#ch-rate"), [
    { label: "in/s", values: h.series("messagesInPerSec"), color: color("--c1") },
    { label: "out/s", values: h.series("messagesOutPerSec"), color: color("--c2") },
  ]);
  drawLineChart($("#ch-drops"), [
    { label: "drops/s", values: delta("drops"), color: color("--c3") },
    { label: "slow closes/s", values: delta("slowConsumerCloses"), color: color("--c4") },
  ]);
  drawLineChart(
    $("#ch-lat"),
    [
      { label: "p50", values: h.series("latencyP50Ms"), color: color("--c1") },
      { label: "p99", values: h.series("latencyP99Ms"), color: color("--c4") },
    ],
    { unit: " ms" },
  );
  const roles = Object.entries(s.byRole || {}).map(([r, n]) => `${r} ${n}`).join(" · ");
  $("#h-conn").textContent = String(s.connections);
  $("#h-roles").textContent = roles || "–";
  $("#h-in").textContent = num(s.messagesInPerSec, 0);
  $("#h-out").textContent = num(s.messagesOutPerSec, 0);
  $("#h-drops").textContent = String(s.drops);
  $("#h-slow").textContent = String(s.slowConsumerCloses);
  $("#h-p50").textContent = `${num(s.latencyP50Ms, 1)} ms`;
  $("#h-p99").textContent = `${num(s.latencyP99Ms, 1)} ms`;
}

// -- operator controls (admin only) ---------------------------------------------------------------

function flash(text, bad = false) {
  const f = $("#ops-status");
  if (!f) return;
  f.textContent = text;
  f.className = bad ? "bad" : "good";
}

async function operate(body) {
  try {
    app.control = await api("POST", "/api/v1/control", body);
    app.controlVersion += 1;
    app.accounts.setPaused(app.control.accounts || []);
    flash(`${body.command} ${body.scope} ${body.account || body.strategy}: done`);
    schedule();
  } catch (err) {
    flash(`${body.command} failed: ${err.message}`, true);
  }
}

function buildControls() {
  const tpl = $("#controls-template");
  $("#controls-slot").replaceWith(tpl.content.cloneNode(true));
  $("#accounts-table thead tr").append(el("th", null, ""));
  $("#connections-table thead tr").append(el("th", null, ""));
  const strategyInput = $("#ctl-strategy");
  const valid = () => /^[A-Za-z0-9_.-]{1,64}$/.test(strategyInput.value.trim());
  $("#ctl-pause").addEventListener("click", () => valid() && operate({ scope: "strategy", strategy: strategyInput.value.trim(), command: "pause" }));
  $("#ctl-resume").addEventListener("click", () => valid() && operate({ scope: "strategy", strategy: strategyInput.value.trim(), command: "resume" }));
  const revokeButton = armedButton("revoke", async () => {
    const kind = $("#rv-kind").value;
    const value = $("#rv-value").value.trim();
    if (!value) return flash("revoke: enter a value", true);
    try {
      const r = await api("POST", "/api/v1/tokens/revoke", { kind, value });
      flash(`revoked ${kind} ${value}: ${r.closedConnections ?? 0} connection(s) closed`);
      $("#rv-value").value = "";
    } catch (err) {
      flash(`revoke failed: ${err.message}`, true);
    }
  });
  revokeButton.id = "rv-submit";
  $("#rv-slot").replaceWith(revokeButton);
}

function renderControlState() {
  const box = $("#paused-list");
  if (!box) return;
  const items = [
    ...(app.control.strategies || []).map((s) => ["strategy", s]),
    ...(app.control.accounts || []).map((a) => ["account", a]),
  ];
  box.replaceChildren(
    ...(items.length
      ? items.map(([scope, key]) => {
          const chip = el("span", "chip st-rejected", `${scope} ${key}`);
          chip.dataset.scope = scope;
          chip.dataset.key = key;
          return chip;
        })
      : [el("span", "muted", "nothing paused")]),
  );
}

// -- theme and boot -------------------------------------------------------------------------------

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_KEY, theme);
  app.drawn.health = -1;
  schedule();
}

async function boot() {
  const stored = localStorage.getItem(THEME_KEY);
  applyTheme(stored || (matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark"));
  $("#theme").addEventListener("click", () =>
    applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"),
  );
  $("#logout").addEventListener("click", logout);
  $("#login-form").addEventListener("submit", onLoginSubmit);
  $("#refresh-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("#refresh-input").value.trim();
    if (!token || !app.refreshWaiter) return;
    app.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    const resolve = app.refreshWaiter;
    app.refreshWaiter = null;
    $("#refresh-input").value = "";
    banner("");
    resolve(token);
  });
  try {
    app.codes = await (await fetch("codes.json")).json();
  } catch {
    app.codes = null;
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return showLogin("");
  try {
    await login(token);
    start();
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(err.status === 401 ? "Your saved token is no longer accepted; log in again." : String(err.message || err));
  }
}

// A small read-only window for tests and for the curious operator (devtools).
globalThis.mtbDashboard = {
  get state() {
    return app.client ? app.client.state : "idle";
  },
  stats: () => ({
    ...app.stats,
    signals: app.signals.size,
    signalsSeen: app.signals.seen,
    events: app.events.size,
    inbox: app.inbox.length,
    reconnects: app.client ? app.client.reconnects : 0,
    finalDeliveries: app.stats.finalStatuses,
    frameWork: { count: app.frameWork.count, p99: percentile(app.frameWork, 0.99, 1) },
    statusLag: lagStats(app.statusLag),
    pageLag: lagStats(app.pageLag),
  }),
  signalIds: () => [...app.signals.order.ids],
  eventIds: () => [...app.events.order.ids],
  signal: (id) => {
    const s = app.signals.byId.get(id);
    return s ? { ...s, deliveries: Object.fromEntries(s.deliveries) } : null;
  },
};

boot();

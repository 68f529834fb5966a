// The example page: a login form, then one hub connection (<MtbridgeProvider>) feeding a live
// signal table with each target account's delivery status, and one account's trade events.

import { useCallback, useEffect, useRef, useState } from "react";
import { MtbridgeProvider, useChannel, useMtbridge } from "./mtbridge-react.jsx";
import { DeliveryBook } from "./deliveries.js";

// Same origin by default: Vite (dev and preview) or your reverse proxy forwards /ws and /api to the
// hub. Set VITE_MTBRIDGE_WS / VITE_MTBRIDGE_HTTP at build time to reach a hub elsewhere (the hub
// sends no CORS headers, so REST must stay same-origin or go through a proxy).
const WS_URL = import.meta.env.VITE_MTBRIDGE_WS || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const HTTP = (import.meta.env.VITE_MTBRIDGE_HTTP || "").replace(/\/+$/, "");
// Optional: your backend's endpoint that answers POST with {"token": "..."} for the logged-in
// user (cookie session). Without it the page asks the operator to paste a fresh token.
const TOKEN_URL = import.meta.env.VITE_MTBRIDGE_TOKEN_URL || "";

const LOGIN_KEY = "mtbridge.example.login"; // sessionStorage: gone with the tab, never in a URL
const SIGNAL_ROWS = 500; // newest signals kept and listed (one REST page covers them)
const EVENT_ROWS = 200;

function loadLogin() {
  try {
    return JSON.parse(sessionStorage.getItem(LOGIN_KEY)) || null;
  } catch {
    return null;
  }
}

export default function App() {
  const [login, setLogin] = useState(loadLogin);
  const [tokenAsk, setTokenAsk] = useState(null); // {resolve, reject} while a fresh token is wanted

  // The client asks on the hub's warning and again before reconnecting after a 4004 close: both
  // wait for the same answer.
  const asking = useRef(null);
  const refreshToken = useCallback(() => {
    asking.current ??= fetchToken(setTokenAsk).finally(() => {
      asking.current = null;
    });
    return asking.current;
  }, []);

  if (!login) {
    return (
      <LoginForm
        onLogin={(l) => {
          sessionStorage.setItem(LOGIN_KEY, JSON.stringify(l));
          setLogin(l);
        }}
      />
    );
  }
  const logout = () => {
    sessionStorage.removeItem(LOGIN_KEY);
    tokenAsk?.reject(new Error("logged out"));
    setTokenAsk(null);
    setLogin(null);
  };
  return (
    <MtbridgeProvider url={WS_URL} token={login.token} refreshToken={refreshToken} options={{ encoding: login.encoding ?? "json" }}>
      <Header onLogout={logout} />
      {tokenAsk && (
        <TokenBanner
          onToken={(token) => {
            tokenAsk.resolve(token);
            setTokenAsk(null);
          }}
        />
      )}
      <main>
        <SignalPanel strategy={login.strategy} />
        <Collapsible title={`Trade events of account ${login.account}`} testid="events-panel">
          <EventPanel account={login.account} />
        </Collapsible>
      </main>
    </MtbridgeProvider>
  );
}

async function fetchToken(setTokenAsk) {
  if (TOKEN_URL) {
    const r = await fetch(TOKEN_URL, { method: "POST", credentials: "include" });
    if (!r.ok) throw new Error(`token endpoint answered ${r.status}`);
    return storeToken((await r.json()).token);
  }
  return storeToken(await new Promise((resolve, reject) => setTokenAsk({ resolve, reject })));
}

// The refreshed token replaces the stored one (a reload of the tab logs in with it), without
// changing the provider's `token` prop, which would open a new connection.
function storeToken(token) {
  if (typeof token !== "string" || !token) throw new Error("no token");
  const login = loadLogin();
  if (login) sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ ...login, token }));
  return token;
}

function LoginForm({ onLogin }) {
  const submit = (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    const token = String(f.get("token")).trim();
    if (!token) return;
    onLogin({
      token,
      strategy: String(f.get("strategy")).trim(),
      account: String(f.get("account")).trim(),
      encoding: String(f.get("encoding")),
    });
  };
  return (
    <form className="login" onSubmit={submit} data-testid="login">
      <h1>mtbridge · React example</h1>
      <label>
        Token (role <code>dashboard</code> or <code>admin</code>)
        <input name="token" type="password" autoComplete="off" required />
      </label>
      <label>
        Strategy <input name="strategy" defaultValue="alpha" pattern="[A-Za-z0-9_.\-]{1,64}" required />
      </label>
      <label>
        Account <input name="account" defaultValue="50123" pattern="[0-9]{1,20}" required />
      </label>
      <label>
        Encoding
        <select name="encoding" defaultValue="json">
          <option value="json">JSON (mtbridge.v1.json)</option>
          <option value="msgpack">MessagePack (mtbridge.v1.msgpack)</option>
        </select>
      </label>
      <button type="submit">Connect</button>
    </form>
  );
}

function Header({ onLogout }) {
  const { client, state, auth, connects, lastClose, expiresAt, error } = useMtbridge();
  const label = error ? `refused: ${error.code ?? error.message}` : state;
  return (
    <header>
      <strong>mtbridge</strong>
      <span className={`conn ${state}`} data-testid="conn" data-state={state} data-connects={connects}>
        {label}
      </span>
      {auth && (
        <span>
          {auth.sub} · {auth.role} · <span data-testid="encoding">{client.welcome?.encoding ?? ""}</span>
        </span>
      )}
      {connects > 1 && <span data-testid="reconnects">reconnected {connects - 1}×</span>}
      {lastClose && state !== "open" && (
        <span>
          last close {lastClose.code}
          {lastClose.delayMs != null && `, retry in ${(lastClose.delayMs / 1000).toFixed(1)} s`}
        </span>
      )}
      {expiresAt && <span data-testid="expires">token until {new Date(expiresAt * 1000).toLocaleTimeString()}</span>}
      <button onClick={onLogout}>log out</button>
    </header>
  );
}

function TokenBanner({ onToken }) {
  const input = useRef(null);
  const submit = (e) => {
    e.preventDefault();
    const token = input.current.value.trim();
    if (token) onToken(token);
  };
  return (
    <form className="banner" onSubmit={submit} data-testid="token-banner">
      The token expires soon. Paste a fresh one (same subject and role):
      <input ref={input} name="fresh-token" type="password" autoComplete="off" />
      <button type="submit">Refresh</button>
    </form>
  );
}

/**
 * Delivery statuses for the signal table: `system:signals` pushes every change live; after each
 * (re)subscribe to it (the channel has no history) one REST page brings what changed meanwhile.
 */
function useDeliveries(strategy) {
  const { token } = useMtbridge();
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const bookRef = useRef(null);
  bookRef.current ??= new DeliveryBook();
  const book = bookRef.current;
  const live = useChannel("system:signals", {
    limit: 0,
    onMessage: (p) => {
      if (p && p.event === "status") book.merge(p.signalId, p.account, p.status, p.at, p.detail ?? null);
    },
  });
  const [reload, setReload] = useState({ count: 0, error: null });
  useEffect(() => {
    if (!live.subscribes) return undefined;
    const ctl = new AbortController();
    const q = new URLSearchParams({ strategy, limit: String(SIGNAL_ROWS) });
    fetch(`${HTTP}/api/v1/signals?${q}`, { headers: { Authorization: `Bearer ${tokenRef.current}` }, signal: ctl.signal })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`GET /api/v1/signals: HTTP ${r.status}`))))
      .then((page) => {
        book.mergeSignals(page.items);
        setReload((r) => ({ count: r.count + 1, error: null }));
      })
      .catch((err) => {
        if (!ctl.signal.aborted) setReload((r) => ({ ...r, error: err.message }));
      });
    return () => ctl.abort();
  }, [live.subscribes, strategy, book]);
  return { book, reload, live };
}

function SignalPanel({ strategy }) {
  const signals = useChannel(`signals:${strategy}`, { since: 0, limit: SIGNAL_ROWS });
  const { book, reload } = useDeliveries(strategy);
  const rows = signals.messages.slice().reverse(); // newest first
  return (
    <section>
      <h2>
        Signals on <code>signals:{strategy}</code>
      </h2>
      <ChannelLine view={signals} extra={reload.error ? `status reload failed: ${reload.error}` : null} />
      <table data-testid="signals">
        <thead>
          <tr>
            <th>offset</th>
            <th>created</th>
            <th>order</th>
            <th>delivery per account</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ key, offset, payload: s }) => {
            const statuses = book.statuses(s.id);
            // Targeted accounts start `pending` (the hub creates their deliveries when it accepts
            // the signal); group targets show up with their first status.
            const accounts = [...new Set([...(s.accounts ?? []), ...Object.keys(statuses)])];
            return (
              <tr key={key} data-signal-id={s.id} data-offset={offset}>
                <td>{offset}</td>
                <td>{s.createdAt ? new Date(s.createdAt).toLocaleTimeString() : ""}</td>
                <td>
                  {s.action} {s.side ?? ""} {s.orderType ?? ""} {s.volume ?? ""} {s.symbol ?? ""}
                </td>
                <td>
                  {accounts.map((a) => {
                    const st = statuses[a] ?? { status: "pending" };
                    return (
                      <span key={a} className={`chip ${st.status}`} data-account={a} data-status={st.status} title={st.detail ?? ""}>
                        {a}: {st.status}
                      </span>
                    );
                  })}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

// Hiding a panel unmounts it (its subscription ends); showing it mounts it again, which subscribes
// from `since` again: the rows come back once each.
function Collapsible({ title, testid, children }) {
  const [open, setOpen] = useState(true);
  return (
    <section data-testid={testid}>
      <h2>
        {title}{" "}
        <button onClick={() => setOpen(!open)} data-testid={`${testid}-toggle`}>
          {open ? "hide" : "show"}
        </button>
      </h2>
      {open && children}
    </section>
  );
}

function EventPanel({ account }) {
  const events = useChannel(`account:${account}:events`, { since: 0, limit: EVENT_ROWS });
  const rows = events.messages.slice().reverse();
  return (
    <>
      <ChannelLine view={events} />
      <table data-testid="events">
        <thead>
          <tr>
            <th>offset</th>
            <th>time</th>
            <th>kind</th>
            <th>what</th>
            <th>signal</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(({ key, offset, payload: e }) => (
            <tr key={key} data-event-id={e.id} data-kind={e.kind} data-offset={offset}>
              <td>{offset}</td>
              <td>{new Date(e.ts).toLocaleTimeString()}</td>
              <td>{e.kind}</td>
              <td>{describe(e)}</td>
              <td title={e.signalId ?? ""}>{e.signalId ? e.signalId.slice(0, 8) : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function describe(e) {
  switch (e.kind) {
    case "deal":
      return `${e.entry} ${e.side} ${e.volume} ${e.symbol} @ ${e.price}`;
    case "order":
      return `${e.state} ${e.side ?? ""} ${e.volume ?? ""} ${e.symbol ?? ""}${e.message ? ` (${e.message})` : ""}`;
    case "position":
      return `${e.state} #${e.ticket} ${e.side} ${e.volume} ${e.symbol}${e.profit != null ? ` profit ${e.profit}` : ""}`;
    case "account":
      return `balance ${e.balance} equity ${e.equity} free margin ${e.freeMargin}`;
    default:
      return "";
  }
}

function ChannelLine({ view, extra }) {
  return (
    <p className="channel" data-status={view.status}>
      {view.status}
      {view.lastOffset != null && ` · offset ${view.lastOffset}`}
      {view.duplicates > 0 && ` · ${view.duplicates} repeats dropped`}
      {view.gap && ` · history gap (${view.gap.reason}): older rows may be missing`}
      {view.error && ` · ${view.error.code ?? ""} ${view.error.message}`}
      {extra && ` · ${extra}`}
    </p>
  );
}

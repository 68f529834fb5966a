// React bindings for @mtbridge/client, small enough to copy into an app.
//
// - <MtbridgeProvider url token refreshToken> owns one client (one WebSocket) for its subtree: it
//   connects on mount, reconnects by itself (the client's backoff and close-code rules) and closes
//   on unmount or when `url` or `token` change (a new login).
// - useMtbridge() gives the connection's state for rendering: {client, state, auth, expiresAt,
//   connects, lastClose, error, token}.
// - useChannel(channel, {since, limit, onMessage}) subscribes for as long as the component is
//   mounted and keeps the last `limit` messages. On a durable channel it keeps the highest offset it
//   has seen: a message at or below it is dropped, and StrictMode's second mount (which keeps the
//   hook's state) resumes from it instead of replaying from `since` again. So a reconnect, a hub
//   restart or a StrictMode remount never shows a message twice.

import { createContext, useContext, useEffect, useRef, useState } from "react";
import { MTBridgeClient, State } from "@mtbridge/client";

const MtbridgeContext = createContext(null);

const IDLE = Object.freeze({
  client: null,
  state: State.IDLE,
  auth: null,
  expiresAt: null,
  connects: 0,
  lastClose: null,
  error: null,
  token: null,
});

/**
 * One hub connection for the subtree.
 *
 * @param {object} props
 * @param {string} props.url - the hub's WebSocket URL, e.g. "ws://127.0.0.1:8765/ws"
 * @param {string|null} props.token - the JWT; nothing connects without one
 * @param {() => Promise<string>} [props.refreshToken] - gives a fresh token for the same sub and
 *   role: called when the hub warns that the token expires within 60 s (then sent with
 *   `auth.refresh` on the live connection) and before reconnecting after a 4004 close
 * @param {object} [props.options] - more MTBridgeClient options (read once per connection)
 */
export function MtbridgeProvider({ url, token, refreshToken, options, children }) {
  const [value, setValue] = useState(IDLE);
  // The latest callbacks and options, read when the client needs them: a new function identity on
  // every render of the parent must not reconnect.
  const refreshRef = useRef(refreshToken);
  refreshRef.current = refreshToken;
  const optionsRef = useRef(options);
  optionsRef.current = options;

  useEffect(() => {
    if (!url || !token) {
      setValue(IDLE);
      return undefined;
    }
    const client = new MTBridgeClient(url, {
      ...optionsRef.current,
      token,
      refreshToken: refreshRef.current ? () => refreshRef.current() : undefined,
    });
    let disposed = false;
    let session = { ...IDLE, client, state: client.state, token };
    const update = (patch) => {
      if (disposed) return;
      session = { ...session, ...patch };
      setValue(session);
    };
    const offs = [
      client.on("state", ({ state }) => update({ state })),
      client.on("open", ({ auth }) =>
        update({
          auth,
          expiresAt: auth.expiresAt ?? null,
          connects: session.connects + 1,
          error: null,
          token: client.token,
        }),
      ),
      client.on("close", (close) => update({ lastClose: close })),
      client.on("token", (result) =>
        update({ expiresAt: result.expiresAt ?? session.expiresAt, token: client.token }),
      ),
    ];
    update({});
    // Rejects only on a terminal close (4500-4999: invalid or revoked token, ...): no reconnect.
    client.connect().catch((error) => update({ error }));
    return () => {
      disposed = true;
      for (const off of offs) off();
      client.close();
    };
  }, [url, token]);

  return <MtbridgeContext.Provider value={value}>{children}</MtbridgeContext.Provider>;
}

/** The provider's connection: `{client, state, auth, expiresAt, connects, lastClose, error, token}`. */
export function useMtbridge() {
  const value = useContext(MtbridgeContext);
  if (value === null) throw new Error("useMtbridge() is used outside <MtbridgeProvider>");
  return value;
}

// One render per animation frame however many messages arrive (a replay brings thousands at
// once). Hidden tabs run no animation frames: a timer takes over there.
function nextFrame(fn) {
  if (typeof document !== "undefined" && document.hidden) return setTimeout(fn, 250);
  return requestAnimationFrame(fn);
}

const EMPTY_VIEW = Object.freeze({
  messages: [],
  status: "idle",
  result: null,
  gap: null,
  error: null,
  lastOffset: null,
  duplicates: 0,
  subscribes: 0,
});

/**
 * Subscribe to `channel` while mounted.
 *
 * @param {string|null} channel - nothing is subscribed while null
 * @param {object} [opts]
 * @param {number} [opts.since] - durable channels: replay what follows this offset (0 = all
 *   retained history) on the first subscribe; later subscribes resume from the last offset seen
 * @param {number} [opts.limit=500] - messages kept (newest); 0 keeps none (use `onMessage`)
 * @param {(payload: object, meta: {channel: string, offset: number}) => void} [opts.onMessage] -
 *   called once per new message, in order, before the next render
 * @returns {{messages: {key: string, offset: number|null, payload: object}[], status: string,
 *   result: object|null, gap: object|null, error: Error|null, lastOffset: number|null,
 *   duplicates: number, subscribes: number}} `status` is `idle`, `subscribing`, `live`,
 *   `recovering` (connection lost; resubscribes from `lastOffset` when it is back) or `error`;
 *   `subscribes` counts subscribe results (a reload of state that the channel does not replay
 *   belongs after each one); `gap` is the last result that could not recover history
 */
export function useChannel(channel, { since, limit = 500, onMessage } = {}) {
  const { client } = useMtbridge();
  const onMessageRef = useRef(onMessage);
  onMessageRef.current = onMessage;
  const limitRef = useRef(limit);
  limitRef.current = limit;
  const memo = useRef(null);
  const [view, setView] = useState(EMPTY_VIEW);

  useEffect(() => {
    if (!client || !channel) {
      memo.current = null;
      setView(EMPTY_VIEW);
      return undefined;
    }
    let m = memo.current;
    if (!m || m.client !== client || m.channel !== channel || m.since !== since) {
      m = memo.current = {
        client,
        channel,
        since,
        rows: [],
        last: null, // highest offset seen on a durable channel
        epoch: null,
        durable: null,
        seq: 0, // row keys on ephemeral channels
        ...EMPTY_VIEW,
        status: "subscribing",
      };
    }
    let active = true;
    let frame = null;
    const flush = () => {
      frame = null;
      if (!active) return;
      setView({
        messages: m.rows.slice(),
        status: m.status,
        result: m.result,
        gap: m.gap,
        error: m.error,
        lastOffset: m.last,
        duplicates: m.duplicates,
        subscribes: m.subscribes,
      });
    };
    const schedule = () => {
      if (frame === null) frame = nextFrame(flush);
    };

    const handler = (payload, meta) => {
      if (!active) return;
      const offset = typeof meta.offset === "number" ? meta.offset : null;
      if (m.durable !== false && offset !== null) {
        // Offsets only grow on a durable channel: at or below the last one is a repeat.
        if (m.last !== null && offset <= m.last) {
          m.duplicates += 1;
          schedule();
          return;
        }
        m.last = offset;
      }
      const keep = limitRef.current;
      if (keep > 0) {
        m.seq += 1;
        const key = offset !== null && m.durable !== false ? `${m.epoch}:${offset}` : `n${m.seq}`;
        m.rows.push({ key, offset, payload });
        if (m.rows.length > keep) m.rows.splice(0, m.rows.length - keep);
      }
      try {
        onMessageRef.current?.(payload, meta);
      } finally {
        schedule();
      }
    };

    const offs = [
      client.on("subscribed", ({ channel: ch, result, pushed }) => {
        // `pushed`: a subscription an operator made over REST, not this hook's.
        if (ch !== channel || !active || pushed) return;
        m.durable = !!result.durable;
        m.epoch = result.epoch ?? null;
        m.result = result;
        m.status = "live";
        m.error = null;
        m.subscribes += 1;
        schedule();
      }),
      client.on("gap", ({ channel: ch, result }) => {
        if (ch !== channel || !active || !result.durable) return; // ephemeral: no history, as designed
        // Nothing was replayed; the client continues live from result.offset (a new epoch's
        // offsets start again, so the last offset seen is the result's).
        m.last = result.offset ?? null;
        m.gap = { reason: result.reason ?? "unknown", advice: result.advice ?? null, at: Date.now() };
        schedule();
      }),
      client.on("state", ({ state }) => {
        if (!active || state === State.OPEN || m.status !== "live") return;
        m.status = "recovering";
        schedule();
      }),
    ];

    const resume = m.last !== null ? { since: m.last, epoch: m.epoch ?? undefined } : { since };
    client.subscribe(channel, handler, resume).catch((error) => {
      if (!active) return;
      m.error = error;
      m.status = "error";
      schedule();
    });
    flush();

    return () => {
      active = false;
      for (const off of offs) off();
      // Also while the subscribe is still unanswered: the client sends the unsubscribe at once and
      // the hub applies a connection's requests in order, so a StrictMode remount (subscribe,
      // unsubscribe, subscribe) ends subscribed once.
      if (client.position(channel) !== null) client.unsubscribe(channel).catch(() => {});
    };
  }, [client, channel, since]);

  return view;
}

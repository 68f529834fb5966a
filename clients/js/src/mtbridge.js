// mtbridge.js: the JavaScript client for the mtbridge hub, protocol v1 (docs/protocol.md).
//
// The source is clients/js/src/mtbridge.js, published as the npm package @mtbridge/client (types in
// mtbridge.d.ts). bridge/dashboard/static/mtbridge.js is a byte-identical copy that the hub serves
// to browsers with no build step: edit the source, then `npm run sync` in clients/js (a test fails
// while the copy is stale).
//
// One ES module, no build step, no static imports. It runs in browsers and in Node >= 20, with the
// global WebSocket (browsers, Node 22+) or the `ws` package passed as `options.WebSocket`. It speaks
// `mtbridge.v1.json`, or `mtbridge.v1.msgpack` with `encoding: "msgpack"`: the codec (./msgpack.js)
// is imported on first use only.
//
// What it does for you: auth in the first message; requestId promises with timeouts; subscriptions
// that remember the last offset and epoch per channel and are restored with `since`/`epoch` after
// every reconnect; reconnect with exponential backoff and full jitter following the close-code rules
// (1001/1006/4000-4499 reconnect, 4500-4999 and 1000 stop) and the hub's `reconnect.afterMs` hint;
// an application heartbeat that declares a silent connection dead; a token-refresh hook.

/** The default subprotocol (JSON). */
export const PROTOCOL = "mtbridge.v1.json";
/** The subprotocol of each encoding. */
export const PROTOCOLS = Object.freeze({ json: "mtbridge.v1.json", msgpack: "mtbridge.v1.msgpack" });

const TEXT_DECODER = new TextDecoder();

/** The JSON codec: envelopes in text frames. */
export const jsonCodec = Object.freeze({
  encoding: "json",
  protocol: PROTOCOLS.json,
  binary: false,
  encode: (message) => JSON.stringify(message),
  decode: (data) => JSON.parse(typeof data === "string" ? data : TEXT_DECODER.decode(data)),
});

let msgpackCodecLoading = null;

/**
 * The codec for an encoding name: `jsonCodec` at once, the MessagePack codec after importing
 * ./msgpack.js (once per page or process; the import is shared by every client).
 */
export function loadCodec(encoding = "json") {
  if (encoding === "json") return Promise.resolve(jsonCodec);
  if (encoding === "msgpack") {
    if (!msgpackCodecLoading) {
      msgpackCodecLoading = import("./msgpack.js").then(
        (m) => m.msgpackCodec,
        (err) => {
          msgpackCodecLoading = null; // a failed fetch may succeed next time
          throw err;
        },
      );
    }
    return msgpackCodecLoading;
  }
  return Promise.reject(new TypeError(`unknown encoding ${JSON.stringify(encoding)}: use "json" or "msgpack"`));
}

// Tunables, named and overridable through the constructor options.
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 20_000;
export const DEFAULT_HEARTBEAT_MISSES = 2;
export const BACKOFF_INITIAL_MS = 500;
export const BACKOFF_MAX_MS = 30_000;
// Floors the contract asks for after some closes ("back off >= 5 s", ">= 30 s").
export const BACKOFF_FLOOR_MS = { 4003: 5_000, 4007: 30_000 };

const OPEN = 1; // WebSocket.OPEN, the same in browsers, undici and ws

/** Connection states, in the order a healthy connection goes through them. */
export const State = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting", // socket opening
  AUTHENTICATING: "authenticating", // auth sent, waiting for its result
  OPEN: "open", // authenticated; subscriptions being restored or live
  RECONNECTING: "reconnecting", // waiting for the backoff delay
  CLOSED: "closed", // stopped: by close(), or a terminal close code
});

/**
 * Whether a client should reconnect after a close with `code` (mirrors
 * bridge.protocol.codes.is_reconnect: 1000 and 4500-4999 stop, everything else reconnects).
 */
export function isReconnect(code) {
  if (code === 1000) return false;
  return !(code >= 4500 && code <= 4999);
}

/** Full-jitter exponential backoff: a random delay in [0, min(max, initial * 2^attempt)). */
export function backoffDelay(attempt, { initialMs = BACKOFF_INITIAL_MS, maxMs = BACKOFF_MAX_MS, random = Math.random } = {}) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** An `error` reply from the hub, or a local failure (timeout, not connected, closed). */
export class MTBridgeError extends Error {
  constructor(code, message, { retryable = false, payload = null } = {}) {
    super(message || code);
    this.name = "MTBridgeError";
    this.code = code;
    this.retryable = retryable;
    this.payload = payload;
    this.details = payload && payload.details ? payload.details : undefined;
  }
}

/**
 * One logical connection to a hub that survives reconnects.
 *
 * Events (subscribe with `client.on(name, fn)`, which returns an unsubscribe function):
 * - `state`: `{state, previous}` on every transition (see `State`)
 * - `open`: `{auth, welcome, reconnected}` after each successful auth
 * - `close`: `{code, reason, reconnect, delayMs}` when a socket closes
 * - `subscribed`: `{channel, result, resubscribed}` for every subscribe result; for a subscription
 *   the hub made over REST, `{channel, result, resubscribed: false, pushed: true, adopted}`
 * - `gap`: `{channel, result}` when a resubscribe could not recover (`recovered: false` on a
 *   durable channel, or any resubscribe of an ephemeral one): reload state over REST
 * - `warning`, `unsubscribed`, `signal.status`, `reconnect`: the hub's messages of those types
 * - `token`: `{expiresAt}` after a successful auth.refresh
 * - `error`: `{error}` for an `error` with no requestId, or a failing hook
 * - `message`: every decoded envelope, for debugging
 */
export class MTBridgeClient {
  /**
   * @param {string} url - e.g. "ws://127.0.0.1:8765/ws"
   * @param {object} options
   * @param {string} options.token - the JWT (sent in the first message, never in the URL)
   * @param {() => (string|Promise<string>)} [options.refreshToken] - called on a `token_expiring`
   *   warning and before reconnecting after 4004; returns a fresh token for the same sub and role
   * @param {(channel: string, result: object) => (Function|undefined)} [options.onHubSubscription] -
   *   called on a `subscribed` push (a subscription made over REST); a handler it returns adopts it
   * @param {Function} [options.WebSocket] - a WebSocket constructor (default: globalThis.WebSocket)
   * @param {object} [options.webSocketOptions] - third constructor argument (the `ws` package only)
   * @param {"json"|"msgpack"} [options.encoding] - the subprotocol (default "json")
   * @param {object} [options.codec] - a codec object instead of `encoding` (e.g. `msgpackCodec`)
   */
  constructor(url, options = {}) {
    this.url = url;
    this.token = options.token ?? null;
    this.refreshToken = options.refreshToken ?? null;
    this.onHubSubscription = options.onHubSubscription ?? null;
    this.WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocketImpl !== "function") {
      throw new TypeError("no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package)");
    }
    this.webSocketOptions = options.webSocketOptions;
    if (options.codec) {
      const c = options.codec;
      if (typeof c.encode !== "function" || typeof c.decode !== "function" || typeof c.protocol !== "string") {
        throw new TypeError("options.codec needs encode(), decode() and protocol");
      }
      this._codec = c;
      this.encoding = c.encoding ?? c.protocol;
    } else {
      this.encoding = options.encoding ?? "json";
      if (!Object.hasOwn(PROTOCOLS, this.encoding)) {
        throw new TypeError(`unknown encoding ${JSON.stringify(this.encoding)}: use "json" or "msgpack"`);
      }
      this._codec = this.encoding === "json" ? jsonCodec : null; // msgpack: loaded by connect()
    }
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.heartbeatMisses = options.heartbeatMisses ?? DEFAULT_HEARTBEAT_MISSES;
    this.backoff = {
      initialMs: options.backoffInitialMs ?? BACKOFF_INITIAL_MS,
      maxMs: options.backoffMaxMs ?? BACKOFF_MAX_MS,
      random: options.random ?? Math.random,
    };
    this.backoffFloors = { ...BACKOFF_FLOOR_MS, ...(options.backoffFloorsMs ?? {}) };
    this.reconnectEnabled = options.reconnect ?? true;

    this.state = State.IDLE;
    this.welcome = null;
    this.auth = null;
    this.connectionId = null;
    this.lastClose = null;
    this.reconnects = 0; // successful re-authentications after the first
    this._ws = null;
    this._listeners = new Map();
    this._pending = new Map(); // requestId -> {resolve, reject, timer}
    this._subs = new Map(); // channel -> {handler, offset, epoch, durable, waiters}
    this._nextId = 1;
    this._attempt = 0;
    this._retryTimer = null;
    this._heartbeatTimer = null;
    this._unanswered = 0;
    this._reconnectHintMs = null;
    this._everOpened = false;
    this._firstOpen = null; // {resolve, reject} of connect()
    this._authError = null;
  }

  // -- events -----------------------------------------------------------------------------------

  on(type, fn) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  _emit(type, detail) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (err) {
        if (type !== "error") this._emit("error", { error: err });
      }
    }
  }

  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit("state", { state, previous });
  }

  // -- lifecycle --------------------------------------------------------------------------------

  /** Open the connection; resolves with the auth result, rejects on a terminal failure. */
  connect() {
    if (this.state !== State.IDLE && this.state !== State.CLOSED) {
      return Promise.reject(new MTBridgeError("invalid_state", `connect() while ${this.state}`));
    }
    this._attempt = 0;
    return new Promise((resolve, reject) => {
      this._firstOpen = { resolve, reject };
      if (this._codec) {
        this._open();
        return;
      }
      this._setState(State.CONNECTING);
      loadCodec(this.encoding).then(
        (codec) => {
          this._codec = codec;
          if (this.state === State.CONNECTING && !this._ws) this._open();
        },
        (err) => {
          if (this.state !== State.CONNECTING || this._ws) return; // closed meanwhile
          this._setState(State.CLOSED);
          this._emit("error", { error: err });
          const e = new MTBridgeError("codec_unavailable", `cannot load the ${this.encoding} codec: ${err && err.message ? err.message : err}`);
          if (this._firstOpen) {
            this._firstOpen.reject(e);
            this._firstOpen = null;
          }
        },
      );
    });
  }

  /** The negotiated subprotocol (`mtbridge.v1.json` or `mtbridge.v1.msgpack`). */
  get protocol() {
    return this._codec ? this._codec.protocol : PROTOCOLS[this.encoding];
  }

  /** Close for good (code 1000); pending requests are rejected, nothing reconnects. */
  close() {
    this._clearTimers();
    const ws = this._ws;
    this._setState(State.CLOSED);
    this._failPending(new MTBridgeError("closed", "client closed"));
    if (this._firstOpen) {
      this._firstOpen.reject(new MTBridgeError("closed", "client closed"));
      this._firstOpen = null;
    }
    if (ws) {
      this._detach(ws);
      this._ws = null;
      try {
        ws.close(1000, "normal");
      } catch {
        // already closing
      }
    }
  }

  _open() {
    this._setState(State.CONNECTING);
    let ws;
    try {
      const protocols = [this._codec.protocol];
      ws = this.webSocketOptions
        ? new this.WebSocketImpl(this.url, protocols, this.webSocketOptions)
        : new this.WebSocketImpl(this.url, protocols);
      // Browsers and undici hand binary frames over as Blobs (asynchronous to read) unless told;
      // `ws` keeps its own default (Node Buffers, a Uint8Array, decoded without a copy).
      if (ws.binaryType === "blob") ws.binaryType = "arraybuffer";
    } catch (err) {
      this._emit("error", { error: err });
      this._handleClose(1006, String(err && err.message ? err.message : err));
      return;
    }
    this._ws = ws;
    this._unanswered = 0;
    this._reconnectHintMs = null;
    ws.onopen = () => this._onSocketOpen(ws);
    ws.onmessage = (ev) => this._onSocketMessage(ws, ev);
    ws.onerror = () => {}; // a close always follows; the close code carries the decision
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._handleClose(ev.code ?? 1006, ev.reason ?? "");
    };
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    // Not null: closing a socket that is still connecting makes Node's \`ws\` emit "error" later,
    // which with no listener is thrown as an uncaught exception (browsers only fire the event).
    ws.onerror = () => {};
  }

  _onSocketOpen(ws) {
    if (this._ws !== ws) return;
    this._setState(State.AUTHENTICATING);
    this._startHeartbeat();
    // onResult, not then(): the connection must be open before the next frame is read (a
    // `subscribed` push may follow the auth result in the same tick).
    this._request("auth", { payload: { token: this.token } }, { onResult: (auth) => this._onAuthenticated(auth) })
      .catch((err) => {
        // The hub closes after a failed auth (4500/4004/4501): the close code decides what follows.
        this._emit("error", { error: err });
        this._authError = err;
      });
  }

  _onAuthenticated(auth) {
    this.auth = auth;
    this.connectionId = auth.connectionId ?? (this.welcome && this.welcome.connectionId) ?? null;
    const reconnected = this._everOpened;
    if (reconnected) this.reconnects += 1;
    this._everOpened = true;
    this._attempt = 0;
    this._setState(State.OPEN);
    this._emit("open", { auth, welcome: this.welcome, reconnected });
    for (const [channel, sub] of this._subs) {
      if (!sub.live) this._sendSubscribe(channel, sub, reconnected);
    }
    if (this._firstOpen) {
      this._firstOpen.resolve(auth);
      this._firstOpen = null;
    }
  }

  _handleClose(code, reason) {
    this._stopHeartbeat();
    const err = new MTBridgeError("connection_closed", `connection closed (${code}${reason ? " " + reason : ""})`, {
      retryable: true,
    });
    this._failPending(err);
    for (const sub of this._subs.values()) {
      sub.live = false;
      sub.sentOn = null;
    }
    if (this.state === State.CLOSED) return;
    const reconnect = this.reconnectEnabled && isReconnect(code);
    let delayMs = null;
    if (reconnect) {
      delayMs = this._reconnectHintMs ?? backoffDelay(this._attempt, this.backoff);
      delayMs = Math.max(delayMs, this.backoffFloors[code] ?? 0);
      this._attempt += 1;
    }
    this.lastClose = { code, reason };
    this._emit("close", { code, reason, reconnect, delayMs });
    if (!reconnect) {
      this._setState(State.CLOSED);
      const terminal = new MTBridgeError(this._authError ? this._authError.code : "closed", `closed with ${code} ${reason}`, {
        payload: { code, reason },
      });
      this._authError = null;
      if (this._firstOpen) {
        this._firstOpen.reject(terminal);
        this._firstOpen = null;
      }
      return;
    }
    this._authError = null;
    this._setState(State.RECONNECTING);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._beforeReconnect(code).then(() => {
        if (this.state === State.RECONNECTING) this._open();
      });
    }, delayMs);
  }

  async _beforeReconnect(code) {
    if (code === 4004 && this.refreshToken) {
      try {
        this.token = await this.refreshToken();
      } catch (err) {
        this._emit("error", { error: err });
      }
    }
  }

  _clearTimers() {
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._stopHeartbeat();
  }

  // -- heartbeat --------------------------------------------------------------------------------

  _startHeartbeat() {
    this._stopHeartbeat();
    if (!this.heartbeatIntervalMs) return;
    this._heartbeatTimer = setInterval(() => this._heartbeatTick(), this.heartbeatIntervalMs);
  }

  _stopHeartbeat() {
    if (this._heartbeatTimer) clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
  }

  _heartbeatTick() {
    const ws = this._ws;
    if (!ws) return;
    if (this._unanswered >= this.heartbeatMisses) {
      // Silent for `heartbeatMisses` intervals: the socket is dead even if the OS has not noticed.
      this._ws = null;
      this._detach(ws);
      try {
        ws.close(4002, "heartbeat timeout");
      } catch {
        // nothing to do
      }
      this._handleClose(4002, "heartbeat timeout (client)");
      return;
    }
    this._unanswered += 1;
    this._sendRaw({ type: "heartbeat" });
  }

  // -- incoming ---------------------------------------------------------------------------------

  _onSocketMessage(ws, ev) {
    if (this._ws !== ws) return;
    this._unanswered = 0; // any traffic proves the connection is alive
    let msg;
    try {
      msg = this._codec.decode(ev.data);
    } catch (err) {
      const code = this._codec.binary ? "invalid_msgpack" : "invalid_json";
      this._emit("error", { error: new MTBridgeError(code, "undecodable message from hub") });
      return;
    }
    if (!msg || typeof msg !== "object" || typeof msg.type !== "string") return;
    this._emit("message", msg);
    switch (msg.type) {
      case "message":
        this._onChannelMessage(msg);
        return;
      case "result":
      case "error":
      case "heartbeat":
        if (msg.requestId !== undefined && this._pending.has(msg.requestId)) {
          const p = this._pending.get(msg.requestId);
          this._pending.delete(msg.requestId);
          clearTimeout(p.timer);
          if (msg.type === "error") {
            const pl = msg.payload || {};
            p.reject(new MTBridgeError(pl.code || "error", pl.message, { retryable: !!pl.retryable, payload: pl }));
          } else {
            const result = msg.payload ?? {};
            // Synchronous, before the next frame: a subscribe result must take effect before the
            // replayed messages that follow it, which `ws` may hand over in the same tick.
            if (p.onResult) {
              try {
                p.onResult(result);
              } catch (err) {
                this._emit("error", { error: err });
              }
            }
            p.resolve(result);
          }
        } else if (msg.type === "error") {
          const pl = msg.payload || {};
          this._emit("error", { error: new MTBridgeError(pl.code || "error", pl.message, { retryable: !!pl.retryable, payload: pl }) });
        }
        return;
      case "welcome":
        this.welcome = msg.payload || null;
        return;
      case "warning":
        this._emit("warning", msg.payload || {});
        if (msg.payload && msg.payload.code === "token_expiring") this._refresh();
        return;
      case "reconnect":
        if (msg.payload && Number.isFinite(msg.payload.afterMs)) {
          this._reconnectHintMs = Math.max(0, Math.min(msg.payload.afterMs, this.backoff.maxMs));
        }
        this._emit("reconnect", msg.payload || {});
        return;
      case "subscribed":
        this._onHubSubscription(msg.channel, msg.payload || {});
        return;
      case "unsubscribed": {
        const sub = this._subs.get(msg.channel);
        this._subs.delete(msg.channel);
        if (sub) sub.live = false;
        this._emit("unsubscribed", { channel: msg.channel, ...(msg.payload || {}) });
        return;
      }
      default:
        this._emit(msg.type, msg.payload || {});
    }
  }

  /**
   * A `subscribed` push: the hub subscribed this connection over REST (docs/protocol.md,
   * "Subscriptions managed over REST"). `options.onHubSubscription(channel, result)` decides: a
   * handler it returns adopts the subscription, which is then the client's like its own (kept
   * across reconnects and resumed by offset, `unsubscribe()`-able); anything else leaves it alone,
   * and its messages are dropped like those of any channel the client did not subscribe to.
   */
  _onHubSubscription(channel, result) {
    if (typeof channel !== "string" || this._subs.has(channel)) return;
    let handler = null;
    if (this.onHubSubscription) {
      try {
        handler = this.onHubSubscription(channel, result);
      } catch (err) {
        this._emit("error", { error: err });
      }
    }
    const adopted = typeof handler === "function";
    if (adopted) {
      const durable = !!result.durable;
      const sub = {
        handler,
        offset: null,
        epoch: result.epoch ?? null,
        durable,
        live: true,
        sentOn: this._ws,
        waiters: [],
        // A replay follows whose first offset the push does not say: until a message gives one,
        // a resubscribe cannot ask for the rest and reports a gap instead.
        unknownStart: false,
      };
      if (durable) {
        if (result.recovered === true && (result.replayed ?? 0) > 0) sub.unknownStart = true;
        else sub.offset = result.offset ?? 0; // live from the channel's end
      }
      this._subs.set(channel, sub);
    }
    this._emit("subscribed", { channel, result, resubscribed: false, pushed: true, adopted });
  }

  _onChannelMessage(msg) {
    const sub = this._subs.get(msg.channel);
    // Before its subscribe result, a message belongs to an earlier subscription to the channel
    // that is being unsubscribed (the hub sends the result before any message it covers).
    if (!sub || !sub.live) return;
    if (sub.durable && typeof msg.offset === "number") {
      // Offsets only grow on a durable channel; anything at or below what we processed is a repeat.
      if (sub.offset !== null && msg.offset <= sub.offset) return;
      sub.offset = msg.offset;
      sub.unknownStart = false;
    }
    try {
      sub.handler(msg.payload, { channel: msg.channel, offset: msg.offset });
    } catch (err) {
      this._emit("error", { error: err });
    }
  }

  async _refresh() {
    if (!this.refreshToken) return;
    try {
      const token = await this.refreshToken();
      if (!token) return;
      this.token = token;
      if (this.state !== State.OPEN) return; // the next connect uses it
      const result = await this.request("auth.refresh", { payload: { token } });
      this._emit("token", result);
    } catch (err) {
      this._emit("error", { error: err });
    }
  }

  // -- outgoing ---------------------------------------------------------------------------------

  _sendRaw(message) {
    const ws = this._ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(this._codec.encode(message));
    return true;
  }

  _request(type, { channel, payload } = {}, { timeoutMs, onResult } = {}) {
    const requestId = String(this._nextId++);
    const message = { type, requestId };
    if (channel !== undefined) message.channel = channel;
    if (payload !== undefined) message.payload = payload;
    return new Promise((resolve, reject) => {
      if (!this._sendRaw(message)) {
        reject(new MTBridgeError("not_connected", "not connected", { retryable: true }));
        return;
      }
      const ms = timeoutMs ?? this.requestTimeoutMs;
      const timer = setTimeout(() => {
        if (this._pending.delete(requestId)) {
          reject(new MTBridgeError("timeout", `${type} got no answer within ${ms} ms`, { retryable: true }));
        }
      }, ms);
      this._pending.set(requestId, { resolve, reject, timer, onResult });
    });
  }

  _failPending(err) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  /**
   * Send any request and wait for its `result` payload (rejects with MTBridgeError on `error`,
   * timeout or disconnect). Only while the client is OPEN.
   */
  request(type, { channel, payload } = {}, { timeoutMs } = {}) {
    if (this.state !== State.OPEN) {
      return Promise.reject(new MTBridgeError("not_connected", `not connected (${this.state})`, { retryable: true }));
    }
    return this._request(type, { channel, payload }, { timeoutMs });
  }

  /**
   * Subscribe to `channel`; `handler(payload, {channel, offset})` gets every message, in order.
   * `since` replays durable history after that offset (0 = all retained). The subscription is
   * kept across reconnects and resumed from the last processed offset. Resolves with the first
   * subscribe result (which may arrive after a reconnect if called while disconnected).
   */
  subscribe(channel, handler, { since, epoch } = {}) {
    if (this._subs.has(channel)) {
      return Promise.reject(new MTBridgeError("already_subscribed", `already subscribed to ${channel}`));
    }
    const sub = {
      handler,
      offset: since ?? null,
      epoch: epoch ?? null,
      durable: null, // known from the first result
      live: false, // the hub's subscribe result seen on the current connection
      sentOn: null, // the socket the last subscribe went out on
      waiters: [],
      unknownStart: false, // see _onHubSubscription
    };
    this._subs.set(channel, sub);
    const done = new Promise((resolve, reject) => sub.waiters.push({ resolve, reject }));
    if (this.state === State.OPEN) this._sendSubscribe(channel, sub, false);
    return done;
  }

  _sendSubscribe(channel, sub, resubscribed) {
    const payload = {};
    const sentSince = sub.offset !== null && sub.durable !== false;
    if (sentSince) {
      payload.since = sub.offset;
      if (sub.epoch) payload.epoch = sub.epoch;
    }
    const onResult = (result) => {
      if (this._subs.get(channel) !== sub) return; // unsubscribed meanwhile (the hub was told)
      sub.live = true;
      sub.durable = !!result.durable;
      sub.epoch = result.epoch ?? null;
      const recovered = sentSince && result.recovered === true;
      const lostStart = sub.unknownStart === true;
      sub.unknownStart = false;
      if (!sub.durable) sub.offset = null;
      else if (!recovered) sub.offset = result.offset ?? 0; // live from the channel's end
      this._emit("subscribed", { channel, result, resubscribed });
      if ((sentSince && !recovered) || (resubscribed && !sub.durable) || lostStart) this._emit("gap", { channel, result });
      for (const w of sub.waiters.splice(0)) w.resolve(result);
    };
    sub.sentOn = this._ws; // the connection that has (or will have) this subscription
    this._request("subscribe", { channel, payload }, { onResult })
      .catch((err) => {
        if (this._subs.get(channel) !== sub) return;
        if (err.code === "connection_closed" || err.code === "not_connected") return; // retried on reconnect
        this._subs.delete(channel);
        const waiters = sub.waiters.splice(0);
        for (const w of waiters) w.reject(err);
        if (!waiters.length) this._emit("error", { error: err });
      });
  }

  /** Stop a subscription (locally at once; on the hub when connected). */
  async unsubscribe(channel) {
    const sub = this._subs.get(channel);
    if (!sub) throw new MTBridgeError("not_subscribed", `not subscribed to ${channel}`);
    this._subs.delete(channel);
    for (const w of sub.waiters.splice(0)) w.reject(new MTBridgeError("unsubscribed", "unsubscribed"));
    // Also while the subscribe is still in flight on this connection: the hub applies a
    // connection's requests in order, so subscribe, unsubscribe, subscribe again (React's
    // StrictMode mounts twice) ends subscribed once. If that subscribe failed, the hub answers
    // not_subscribed, which is what we wanted.
    const onHub = sub.live || (sub.sentOn !== null && sub.sentOn === this._ws);
    if (this.state !== State.OPEN || !onHub) return {};
    try {
      return await this._request("unsubscribe", { channel });
    } catch (err) {
      if (err.code === "not_subscribed") return {};
      throw err;
    }
  }

  /** The recovery position of a subscription: `{offset, epoch, durable}` or null. */
  position(channel) {
    const sub = this._subs.get(channel);
    return sub ? { offset: sub.offset, epoch: sub.epoch, durable: sub.durable } : null;
  }

  publish(channel, payload, opts) {
    return this.request("publish", { channel, payload }, opts);
  }

  ack(signalId, account, opts) {
    const payload = { signalId };
    if (account !== undefined) payload.account = account;
    return this.request("signal.ack", { payload }, opts);
  }

  tradeEvent(event, opts) {
    return this.request("trade.event", { payload: event }, opts);
  }

  /** One round trip to the hub; resolves with the hub's `{ts}`. */
  heartbeat(opts) {
    return this.request("heartbeat", {}, opts);
  }
}

// Types of @mtbridge/client (mtbridge.js), protocol v1. The wire contract is docs/protocol.md;
// where this file and that page disagree, this file has a bug.

// ---------------------------------------------------------------------------------------------
// Encodings and codecs
// ---------------------------------------------------------------------------------------------

/** The encoding names a client may ask for. */
export type Encoding = "json" | "msgpack";

/** The default subprotocol (JSON). */
export declare const PROTOCOL: "mtbridge.v1.json";
/** The subprotocol of each encoding. */
export declare const PROTOCOLS: { readonly json: "mtbridge.v1.json"; readonly msgpack: "mtbridge.v1.msgpack" };

/** Turns envelopes into frames and back (one envelope per WebSocket message). */
export interface Codec {
  /** A name for `client.encoding`, e.g. "json". */
  readonly encoding?: string;
  /** The subprotocol offered in the handshake. */
  readonly protocol: string;
  /** Whether frames are binary (`true`) or text. */
  readonly binary: boolean;
  encode(message: object): string | Uint8Array;
  /** Throws on an undecodable frame (the client reports `invalid_json` / `invalid_msgpack`). */
  decode(data: string | ArrayBuffer | ArrayBufferView): unknown;
}

/** The `mtbridge.v1.json` codec: envelopes as UTF-8 JSON in text frames. */
export declare const jsonCodec: Codec & { readonly encoding: "json"; readonly protocol: "mtbridge.v1.json"; readonly binary: false };

/** The codec of an encoding; MessagePack is imported from ./msgpack.js on first use. */
export declare function loadCodec(encoding?: Encoding): Promise<Codec>;

// ---------------------------------------------------------------------------------------------
// Tunables, helpers, errors
// ---------------------------------------------------------------------------------------------

export declare const DEFAULT_REQUEST_TIMEOUT_MS: number;
export declare const DEFAULT_HEARTBEAT_INTERVAL_MS: number;
export declare const DEFAULT_HEARTBEAT_MISSES: number;
export declare const BACKOFF_INITIAL_MS: number;
export declare const BACKOFF_MAX_MS: number;
/** Minimum delays after some close codes: `{4003: 5000, 4007: 30000}`. */
export declare const BACKOFF_FLOOR_MS: Readonly<Record<number, number>>;

/** Connection states, in the order a healthy connection goes through them. */
export declare const State: {
  readonly IDLE: "idle";
  readonly CONNECTING: "connecting";
  readonly AUTHENTICATING: "authenticating";
  readonly OPEN: "open";
  readonly RECONNECTING: "reconnecting";
  readonly CLOSED: "closed";
};
export type StateName = (typeof State)[keyof typeof State];

/** Whether a close code means "reconnect" (everything but 1000 and 4500-4999). */
export declare function isReconnect(code: number): boolean;

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  random?: () => number;
}
/** Full-jitter exponential backoff: a random delay in [0, min(max, initial * 2^attempt)). */
export declare function backoffDelay(attempt: number, options?: BackoffOptions): number;

/** The hub's error codes (docs/protocol.md, Error codes), plus the client's local ones. */
export type HubErrorCode =
  | "bad_request"
  | "invalid_json"
  | "invalid_msgpack"
  | "unknown_type"
  | "auth_required"
  | "already_authenticated"
  | "token_invalid"
  | "token_expired"
  | "token_revoked"
  | "subject_mismatch"
  | "forbidden"
  | "invalid_channel"
  | "unknown_namespace"
  | "already_subscribed"
  | "not_subscribed"
  | "too_many_subscriptions"
  | "rate_limited"
  | "validation_failed"
  | "not_found"
  | "bad_offset"
  | "paused"
  | "unavailable"
  | "internal";
export type LocalErrorCode =
  | "timeout"
  | "not_connected"
  | "connection_closed"
  | "closed"
  | "invalid_state"
  | "already_subscribed"
  | "not_subscribed"
  | "unsubscribed"
  | "codec_unavailable";
// `string & {}` keeps autocompletion of the known codes while admitting codes added later.
export type ErrorCode = HubErrorCode | LocalErrorCode | (string & {});

/** One problem of a `validation_failed` error. */
export interface ValidationDetail {
  field: string;
  code: string;
  message: string;
}

/** `error.payload` as the hub sends it. */
export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** `validation_failed` only. */
  details?: ValidationDetail[];
  /** `rate_limited` only. */
  retryAfterMs?: number;
  [extra: string]: unknown;
}

/** An `error` reply from the hub, or a local failure (timeout, not connected, closed). */
export declare class MTBridgeError extends Error {
  constructor(code: ErrorCode, message?: string, options?: { retryable?: boolean; payload?: unknown });
  readonly name: "MTBridgeError";
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** The hub's error payload; for a terminal close `{code, reason}` of the close. */
  readonly payload: ErrorPayload | { code: number; reason: string } | null;
  readonly details: ValidationDetail[] | undefined;
}

// ---------------------------------------------------------------------------------------------
// Protocol payloads (docs/protocol.md)
// ---------------------------------------------------------------------------------------------

export type Role = "engine" | "ea" | "dashboard" | "admin";

/** `welcome.payload.limits`. */
export interface Limits {
  maxMessageBytes: number;
  maxQueueBytes: number;
  maxQueueMessages: number;
  maxSubscriptions: number;
  ratePerSecond: number;
  rateBurst: number;
  authTimeoutMs: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  tokenGraceMs: number;
}

/** The first message on every connection. */
export interface Welcome {
  connectionId: string;
  protocol: "mtbridge.v1";
  encoding: Encoding;
  authenticated: boolean;
  limits: Limits;
  sub?: string;
  role?: Role;
  expiresAt?: number;
}

/** The `auth` result. `expiresAt` is in unix seconds (the JWT `exp`). */
export interface AuthResult {
  sub: string;
  role: Role;
  expiresAt: number;
  connectionId: string;
}

/** The `auth.refresh` result (the `token` event's detail). */
export interface RefreshResult {
  sub: string;
  role: Role;
  expiresAt: number;
}

export type RecoveryFailure = "history_trimmed" | "epoch_changed" | "offset_ahead" | "too_many" | "no_history";

/** The `subscribe` result. */
export interface SubscribeResult {
  /** The channel's last offset when the subscription took effect. */
  offset: number;
  epoch: string | null;
  durable: boolean;
  /** Present when `since` was sent. */
  recovered?: boolean;
  replayed?: number;
  reason?: RecoveryFailure | (string & {});
  advice?: string;
  [extra: string]: unknown;
}

/** The `publish` result. */
export interface PublishResult {
  offset: number;
  epoch: string | null;
  duplicate: boolean;
}

export type DeliveryStatus = "pending" | "delivered" | "acked" | "executed" | "rejected" | "expired";

/** The `signal.ack` result. */
export interface AckResult {
  signalId: string;
  account: string;
  status: DeliveryStatus;
}

/** The `trade.event` result (sent only after the event is committed). */
export interface TradeEventResult {
  id: string;
  duplicate: boolean;
}

/** A `heartbeat` answer: the hub's time in unix ms. */
export interface HeartbeatResult {
  ts: number;
}

export type SignalAction = "open" | "close" | "modify" | "cancel" | "close_all";
export type Side = "buy" | "sell";

/** A signal as an engine publishes it on `signals:<strategy>` (exactly one of `ttl`/`expiresAt`). */
export interface SignalInput {
  /** UUID chosen by the publisher: publishing it again is a no-op (`duplicate: true`). */
  id: string;
  strategy: string;
  accounts?: string[];
  groups?: string[];
  symbol?: string;
  action: SignalAction;
  side?: Side;
  orderType?: "market" | "limit" | "stop";
  volume?: number;
  price?: number;
  sl?: number;
  tp?: number;
  deviation?: number;
  magic?: number;
  comment?: string;
  /** Seconds. */
  ttl?: number;
  /** Unix ms. */
  expiresAt?: number;
  /** Unix ms. */
  createdAt?: number;
}

/** A signal as delivered: the canonical form, `ttl` resolved to `expiresAt`, `createdAt` set. */
export interface Signal extends Omit<SignalInput, "ttl" | "expiresAt" | "createdAt"> {
  expiresAt: number;
  createdAt: number;
}

interface TradeEventBase {
  /** UUID chosen by the EA: sending it again is a no-op (`duplicate: true`). */
  id: string;
  account: string;
  /** Unix ms. */
  ts: number;
  signalId?: string;
}

export interface OrderEvent extends TradeEventBase {
  kind: "order";
  state: "placed" | "modified" | "filled" | "partially_filled" | "cancelled" | "rejected" | "expired";
  ticket?: number;
  symbol?: string;
  side?: Side;
  orderType?: "market" | "limit" | "stop" | "stop_limit";
  volume?: number;
  price?: number;
  sl?: number;
  tp?: number;
  magic?: number;
  comment?: string;
  retcode?: number;
  message?: string;
}

export interface DealEvent extends TradeEventBase {
  kind: "deal";
  ticket: number;
  symbol: string;
  side: Side;
  entry: "in" | "out" | "inout" | "out_by";
  volume: number;
  price: number;
  order?: number;
  position?: number;
  profit?: number;
  commission?: number;
  swap?: number;
  fee?: number;
  magic?: number;
  comment?: string;
}

export interface PositionEvent extends TradeEventBase {
  kind: "position";
  ticket: number;
  symbol: string;
  side: Side;
  state: "opened" | "modified" | "closed";
  volume: number;
  priceOpen: number;
  sl?: number;
  tp?: number;
  profit?: number;
  swap?: number;
  magic?: number;
  comment?: string;
}

export interface OpenPosition {
  ticket: number;
  symbol: string;
  side: Side;
  volume: number;
  priceOpen: number;
  sl?: number;
  tp?: number;
  profit?: number;
  swap?: number;
  magic?: number;
  comment?: string;
}

export interface AccountEvent extends TradeEventBase {
  kind: "account";
  balance: number;
  equity: number;
  margin: number;
  freeMargin: number;
  marginLevel?: number;
  currency?: string;
  leverage?: number;
  positions?: OpenPosition[];
}

/** What an EA reports with `trade.event`; rebroadcast on `account:<login>:events` and `system:events`. */
export type TradeEvent = OrderEvent | DealEvent | PositionEvent | AccountEvent;

/** `signal.status` pushes, and the `status` items of `system:signals`. */
export interface SignalStatus {
  signalId: string;
  account: string;
  status: DeliveryStatus;
  /** Unix ms. */
  at: number;
  detail?: string;
}

/** A pause or resume, on `account:<login>:control`. */
export interface ControlCommand {
  command: "pause" | "resume";
  scope: "account" | "strategy";
  account: string | null;
  strategy: string | null;
  /** Unix ms. */
  at: number;
  by: string;
}

/** What `system:signals` carries. */
export type SystemSignalsMessage =
  | { event: "signal"; signal: Signal & { offset: number; channel: string } }
  | ({ event: "status" } & SignalStatus)
  | ({ event: "control" } & ControlCommand);

/** A connection as `GET /api/v1/connections` and `system:connections` describe it. */
export interface ConnectionInfo {
  id: string;
  sub: string | null;
  role: Role | null;
  accounts: string[];
  ip: string;
  encoding: Encoding;
  ageSeconds: number;
  queueBytes: number;
  subscriptions: string[];
  messagesIn: number;
  messagesOut: number;
}

export interface SystemConnectionsMessage {
  event: "connected" | "disconnected";
  connection: ConnectionInfo;
}

/** A `system:health` sample (one a second). */
export interface HealthSample {
  ts: number;
  connections: number;
  byRole: Record<string, number>;
  messagesInPerSec: number;
  messagesOutPerSec: number;
  drops: number;
  slowConsumerCloses: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  [extra: string]: unknown;
}

/** The payload type of a channel, from its name; `unknown` for channels the protocol leaves open. */
export type ChannelPayload<C extends string> = C extends `signals:${string}`
  ? Signal
  : C extends `account:${string}:events`
    ? TradeEvent
    : C extends `account:${string}:control`
      ? ControlCommand
      : C extends "system:events"
        ? TradeEvent
        : C extends "system:signals"
          ? SystemSignalsMessage
          : C extends "system:connections"
            ? SystemConnectionsMessage
            : C extends "system:health"
              ? HealthSample
              : unknown;

/** `warning` payloads. */
export interface WarningPayload {
  code: "token_expiring" | (string & {});
  /** Unix seconds. */
  expiresAt?: number;
  /** Unix seconds. */
  closeAt?: number;
  [extra: string]: unknown;
}

/** A `reconnect` hint, just before a graceful shutdown closes with 1001. */
export interface ReconnectPayload {
  afterMs: number;
  reason: string;
}

// ---------------------------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------------------------

/** Every message, both ways, is one envelope. */
export interface Envelope<T extends string = string, P = unknown> {
  type: T;
  requestId?: string;
  channel?: string;
  payload?: P;
  /** Only on hub → client `message`. */
  offset?: number;
}

/** The requests a client sends, with their payload and the payload of their `result`. */
export interface Requests {
  auth: { payload: { token: string }; result: AuthResult };
  "auth.refresh": { payload: { token: string }; result: RefreshResult };
  subscribe: { payload: { since?: number; epoch?: string }; result: SubscribeResult };
  unsubscribe: { payload: undefined; result: Record<string, never> };
  publish: { payload: object; result: PublishResult };
  heartbeat: { payload: undefined; result: HeartbeatResult };
  "signal.ack": { payload: { signalId: string; account?: string }; result: AckResult };
  "trade.event": { payload: TradeEvent; result: TradeEventResult };
}
export type RequestType = keyof Requests;

/** Hub → client envelopes. */
export type HubEnvelope =
  | Envelope<"welcome", Welcome>
  | Envelope<"result", unknown>
  | Envelope<"error", ErrorPayload>
  | (Envelope<"message", unknown> & { channel: string; offset?: number })
  | Envelope<"heartbeat", HeartbeatResult>
  | Envelope<"warning", WarningPayload>
  | (Envelope<"subscribed", SubscribeResult> & { channel: string })
  | (Envelope<"unsubscribed", { reason: string }> & { channel: string })
  | Envelope<"signal.status", SignalStatus>
  | Envelope<"reconnect", ReconnectPayload>;

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/** The part of the WebSocket API the client uses (browsers, undici's global, the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  onopen: ((ev: any) => unknown) | null;
  // `any` events: browsers, undici and `ws` each declare their own event classes.
  onmessage: ((ev: any) => unknown) | null;
  onerror: ((ev: any) => unknown) | null;
  onclose: ((ev: any) => unknown) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `ws`'s default export. */
export type WebSocketConstructor = new (url: string, protocols: string[], options?: any) => WebSocketLike;

export interface ClientOptions {
  /** The JWT, sent in the first message (never in the URL). */
  token?: string | null;
  /** Called on `token_expiring` and before reconnecting after 4004; returns a fresh token (same sub and role). */
  refreshToken?: (() => string | Promise<string>) | null;
  /**
   * Called on a `subscribed` push (the hub subscribed this connection over REST). Return a handler
   * to adopt the subscription: kept across reconnects, resumed by offset, `unsubscribe()`-able.
   * Return nothing to leave it alone (its messages are dropped).
   */
  onHubSubscription?: ((channel: string, result: SubscribeResult) => MessageHandler<any> | null | undefined | void) | null;
  /** Default: `globalThis.WebSocket` (browsers, Node 22+). Node 20: `import WebSocket from "ws"`. */
  WebSocket?: WebSocketConstructor | null;
  /** Third constructor argument (the `ws` package only: headers, agent, TLS options…). */
  webSocketOptions?: object;
  /** "json" (default) or "msgpack". */
  encoding?: Encoding;
  /** A codec object instead of `encoding` (e.g. `msgpackCodec` from "@mtbridge/client/msgpack"). */
  codec?: Codec;
  /** Default 10,000. */
  requestTimeoutMs?: number;
  /** Default 20,000; 0 turns the application heartbeat off. */
  heartbeatIntervalMs?: number;
  /** Intervals without any traffic before the connection is declared dead. Default 2. */
  heartbeatMisses?: number;
  /** Default 500. */
  backoffInitialMs?: number;
  /** Default 30,000; also caps the hub's `reconnect.afterMs` hint. */
  backoffMaxMs?: number;
  /** Minimum delay per close code, merged over `{4003: 5000, 4007: 30000}`. */
  backoffFloorsMs?: Record<number, number>;
  /** Default true. */
  reconnect?: boolean;
  /** For tests: the jitter source. */
  random?: () => number;
}

export interface MessageMeta {
  channel: string;
  /** The offset on durable channels (ephemeral channels count publications). */
  offset: number | undefined;
}

export type MessageHandler<P = unknown> = (payload: P, meta: MessageMeta) => void;

export interface SubscribeOptions {
  /** Replay durable history after this offset (0 = all retained). */
  since?: number;
  /** The channel's epoch that `since` belongs to. */
  epoch?: string;
}

/** `position(channel)`: what the next resubscribe will send. */
export interface Position {
  offset: number | null;
  epoch: string | null;
  durable: boolean | null;
}

export interface RequestOptions {
  timeoutMs?: number;
}

/** The events of `client.on(name, fn)` and their details. */
export interface ClientEvents {
  state: { state: StateName; previous: StateName };
  open: { auth: AuthResult; welcome: Welcome | null; reconnected: boolean };
  close: { code: number; reason: string; reconnect: boolean; delayMs: number | null };
  /** `pushed`: the hub made the subscription over REST; `adopted`: `onHubSubscription` took it. */
  subscribed: { channel: string; result: SubscribeResult; resubscribed: boolean; pushed?: true; adopted?: boolean };
  /** A resubscribe could not recover: reload that state over REST. */
  gap: { channel: string; result: SubscribeResult };
  unsubscribed: { channel: string; reason?: string };
  warning: WarningPayload;
  reconnect: ReconnectPayload;
  "signal.status": SignalStatus;
  token: RefreshResult;
  error: { error: unknown };
  message: HubEnvelope;
}

/** One logical connection to a hub that survives reconnects. */
export declare class MTBridgeClient {
  /** @param url e.g. "ws://127.0.0.1:8765/ws" */
  constructor(url: string, options?: ClientOptions);

  readonly url: string;
  /** The current token (replaced by `refreshToken()`). */
  token: string | null;
  /** The encoding asked for ("json" or "msgpack", or a custom codec's name). */
  readonly encoding: string;
  /** The subprotocol offered: `mtbridge.v1.json` or `mtbridge.v1.msgpack`. */
  readonly protocol: string;
  readonly state: StateName;
  readonly welcome: Welcome | null;
  readonly auth: AuthResult | null;
  readonly connectionId: string | null;
  readonly lastClose: { code: number; reason: string } | null;
  /** Successful re-authentications after the first. */
  readonly reconnects: number;

  /** Add a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(type: K, fn: (detail: ClientEvents[K]) => void): () => boolean;
  /** Hub message types this version does not know are emitted under their own name. */
  on(type: string, fn: (detail: any) => void): () => boolean;

  /** Open the connection; resolves with the auth result, rejects on a terminal failure. */
  connect(): Promise<AuthResult>;
  /** Close for good (code 1000): pending requests reject with `closed`, nothing reconnects. */
  close(): void;

  /** Any request; resolves with its `result` payload. Only while the state is `open`. */
  request<K extends RequestType>(
    type: K,
    message?: { channel?: string; payload?: Requests[K]["payload"] },
    options?: RequestOptions,
  ): Promise<Requests[K]["result"]>;
  request(type: string, message?: { channel?: string; payload?: object }, options?: RequestOptions): Promise<unknown>;

  /**
   * Subscribe; `handler(payload, {channel, offset})` gets every message in order, exactly once,
   * across reconnects (resumed from the last processed offset). Resolves with the first result.
   */
  subscribe<C extends string, P = ChannelPayload<C>>(
    channel: C,
    handler: MessageHandler<P>,
    options?: SubscribeOptions,
  ): Promise<SubscribeResult>;
  /** Remove a subscription (locally at once, on the hub when connected). */
  unsubscribe(channel: string): Promise<Record<string, never>>;
  /** The recovery position of a subscription, or null. */
  position(channel: string): Position | null;

  publish(channel: `signals:${string}`, payload: SignalInput, options?: RequestOptions): Promise<PublishResult>;
  /** Other channels (`signals:` ones take a SignalInput, above). */
  publish<C extends string>(
    channel: C extends `signals:${string}` ? never : C,
    payload: object,
    options?: RequestOptions,
  ): Promise<PublishResult>;
  ack(signalId: string, account?: string, options?: RequestOptions): Promise<AckResult>;
  tradeEvent(event: TradeEvent, options?: RequestOptions): Promise<TradeEventResult>;
  /** One round trip to the hub. */
  heartbeat(options?: RequestOptions): Promise<HeartbeatResult>;
}

// The page's end of the live feed: starts feed-worker.js (the WebSocket and the client run there,
// off the main thread) and stands in for the client in app.js. It mirrors the client's state,
// connection id, reconnect count and last close from the worker's messages, re-emits the client's
// lifecycle events, hands the channels' payloads over in batches ("batch"), and answers the
// client's token-refresh hook. Nothing here decodes, merges or renders.

export class Feed {
  /**
   * @param {string} url - the hub's WebSocket URL
   * @param {object} options
   * @param {string} options.token - the JWT
   * @param {() => Promise<string>} options.refreshToken - asked when the client needs a new token
   * @param {Record<string, string>} options.channels - channel -> the kind its payloads are batched as
   */
  constructor(url, { token, refreshToken, channels }) {
    this.state = "idle";
    this.connectionId = null;
    this.reconnects = 0;
    this.lastClose = null;
    this._listeners = new Map();
    this._worker = new Worker(new URL("./feed-worker.js", import.meta.url), { type: "module", name: "mtbridge-feed" });
    this._worker.onmessage = ({ data }) => this._receive(data, refreshToken);
    this._worker.onerror = (ev) => console.warn("mtbridge feed worker:", ev.message);
    this._start = { type: "start", url, token, channels };
  }

  on(type, fn) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  connect() {
    this._worker.postMessage(this._start);
  }

  close() {
    this._worker.postMessage({ type: "close" });
  }

  _emit(type, event) {
    const set = this._listeners.get(type);
    if (set) for (const fn of set) fn(event);
  }

  async _receive(data, refreshToken) {
    if (data.type === "batch") return this._emit("batch", data.items);
    if (data.type === "refresh") {
      const token = await refreshToken();
      this._worker.postMessage({ type: "token", token });
      return;
    }
    Object.assign(this, data.client);
    this._emit(data.type, data.event);
  }
}

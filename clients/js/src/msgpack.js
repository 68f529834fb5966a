// msgpack.js: the `mtbridge.v1.msgpack` codec of the mtbridge client (docs/protocol.md, Envelopes).
//
// In the npm package this module imports @msgpack/msgpack from node_modules. The hub serves a
// browser copy of it at /msgpack.js: the same file bundled with that dependency into one ES module
// by clients/js/scripts/sync-static.mjs (esbuild, versions pinned by package-lock.json), so
// browsers load it with no build step. mtbridge.js imports it lazily, only when a client asks for
// MessagePack, so JSON users never download it.

import { Decoder, Encoder } from "@msgpack/msgpack";

// The hub accepts what JSON can carry (nil, bool, 64-bit integers, finite floats, strings, arrays,
// maps). Undefined fields are left out as JSON.stringify does: a nil `since` would be refused.
const encoder = new Encoder({ ignoreUndefined: true });
// 64-bit integers decode to numbers: offsets and unix-ms timestamps stay far below 2^53.
const decoder = new Decoder();

/** The codec object that MTBridgeClient takes as `options.codec` (or loads for `encoding: "msgpack"`). */
export const msgpackCodec = Object.freeze({
  encoding: "msgpack",
  protocol: "mtbridge.v1.msgpack",
  binary: true,
  /** One envelope to one binary frame. */
  encode: (message) => encoder.encode(message),
  /** One binary frame (ArrayBuffer, Uint8Array or Node Buffer) to one envelope. */
  decode: (data) => {
    if (typeof data === "string") throw new TypeError("a text frame on a MessagePack connection");
    return decoder.decode(data);
  },
});

// Types of @mtbridge/client/msgpack (msgpack.js): the MessagePack codec.

import type { Codec } from "./mtbridge.js";

/**
 * The `mtbridge.v1.msgpack` codec: envelopes in binary frames, encoded with @msgpack/msgpack.
 * Pass it as `options.codec` to load it eagerly, or use `encoding: "msgpack"` to import it lazily.
 */
export declare const msgpackCodec: Codec & {
  readonly encoding: "msgpack";
  readonly protocol: "mtbridge.v1.msgpack";
  readonly binary: true;
  encode(message: object): Uint8Array;
};

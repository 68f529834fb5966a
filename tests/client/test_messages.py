from __future__ import annotations

import contextlib

import msgpack
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.client._messages import ProtocolViolation, decode_incoming, encode_outgoing
from bridge.protocol.envelope import Encoding


class TestDecode:
    def test_client_decodes_message_with_offset(self) -> None:
        raw = '{"type":"message","channel":"signals:a","offset":3,"payload":{"x":1}}'
        m = decode_incoming(raw, Encoding.JSON)
        assert (m.type, m.channel, m.offset, m.payload) == ("message", "signals:a", 3, {"x": 1})

    def test_client_decodes_msgpack(self) -> None:
        raw = msgpack.packb({"type": "result", "requestId": "1", "payload": {}})
        assert decode_incoming(raw, Encoding.MSGPACK).request_id == "1"

    @pytest.mark.parametrize(
        "raw",
        [
            "[]",
            '{"type":""}',
            '{"type":"x","extra":1}',
            '{"type":"x","offset":-1}',
            '{"type":"x","offset":true}',
            '{"type":"x","payload":[]}',
            '{"type":"x","requestId":5}',
        ],
    )
    def test_client_rejects_bad_shapes(self, raw: str) -> None:
        with pytest.raises(ProtocolViolation):
            decode_incoming(raw, Encoding.JSON)

    def test_client_rejects_wrong_frame_kind(self) -> None:
        with pytest.raises(ProtocolViolation):
            decode_incoming(b'{"type":"x"}', Encoding.JSON)
        with pytest.raises(ProtocolViolation):
            decode_incoming('{"type":"x"}', Encoding.MSGPACK)

    @given(st.binary(max_size=200))
    def test_client_decode_msgpack_never_crashes(self, data: bytes) -> None:
        with contextlib.suppress(ProtocolViolation):
            decode_incoming(data, Encoding.MSGPACK)

    @given(st.text(max_size=200))
    def test_client_decode_json_never_crashes(self, data: str) -> None:
        with contextlib.suppress(ProtocolViolation):
            decode_incoming(data, Encoding.JSON)

    def test_client_encodes_json_as_text_and_msgpack_as_bytes(self) -> None:
        msg = {"type": "heartbeat", "requestId": "1"}
        assert orjson.loads(encode_outgoing(msg, Encoding.JSON)) == msg
        packed = encode_outgoing(msg, Encoding.MSGPACK)
        assert isinstance(packed, bytes) and msgpack.unpackb(packed) == msg

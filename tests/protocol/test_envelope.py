"""Envelope codec, framing and the code registries: pure, no event loop."""

from __future__ import annotations

import json
import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.protocol import codes
from bridge.protocol.envelope import Encoding, Envelope, EnvelopeError, decode, encode
from bridge.protocol.framing import OP_BINARY, OP_TEXT, data_frame

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


class TestDecode:
    def test_decode_accepts_the_documented_lines(self) -> None:
        env = decode(b'{"type":"auth","requestId":"1","payload":{"token":"t"}}', Encoding.JSON)
        assert env == Envelope("auth", "1", None, {"token": "t"})
        env = decode(b'{"type":"subscribe","requestId":"2","channel":"signals:alpha"}', Encoding.JSON)
        assert env.channel == "signals:alpha" and env.payload is None

    @pytest.mark.parametrize(
        ("raw", "code"),
        [
            (b"nope", "invalid_json"),
            (b"[]", "bad_request"),
            (b'{"type":""}', "bad_request"),
            (b'{"type":"x","extra":1}', "bad_request"),
            (b'{"type":"x","payload":[1]}', "bad_request"),
            (b'{"type":"x","channel":5}', "invalid_channel"),
            (b'{"type":"x","requestId":""}', "bad_request"),
            (b'{"type":"x","requestId":"' + b"r" * 65 + b'"}', "bad_request"),
            (b'{"type":"x","n":NaN}', "invalid_json"),
        ],
    )
    def test_decode_rejects_bad_shapes(self, raw: bytes, code: str) -> None:
        with pytest.raises(EnvelopeError) as info:
            decode(raw, Encoding.JSON)
        assert info.value.code == code
        assert info.value.code in codes.ERRORS

    def test_errors_carry_the_request_id_when_readable(self) -> None:
        with pytest.raises(EnvelopeError) as info:
            decode(b'{"type":"x","requestId":"r9","payload":7}', Encoding.JSON)
        assert info.value.request_id == "r9"

    def test_msgpack_values_are_limited_to_what_json_carries(self) -> None:
        ok = decode(
            msgpack.packb({"type": "publish", "channel": "a:b", "payload": {"x": [1, 2.5, None]}}),
            Encoding.MSGPACK,
        )
        assert ok.payload == {"x": [1, 2.5, None]}
        for bad in ({"x": b"bytes"}, {"x": float("nan")}, {"x": {"k": b"b"}}):
            with pytest.raises(EnvelopeError):
                decode(msgpack.packb({"type": "publish", "payload": bad}), Encoding.MSGPACK)
        with pytest.raises(EnvelopeError):
            decode(msgpack.packb({1: "int key"}), Encoding.MSGPACK)
        deep: object = 1
        for _ in range(40):
            deep = {"d": deep}
        with pytest.raises(EnvelopeError):
            decode(msgpack.packb({"type": "x", "payload": deep}), Encoding.MSGPACK)

    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=256))
    def test_arbitrary_bytes_give_only_structured_errors(self, data: bytes) -> None:
        for enc in Encoding:
            try:
                env = decode(data, enc)
            except EnvelopeError as exc:
                assert exc.code in codes.ERRORS
            else:
                assert isinstance(env.type, str)

    @settings(max_examples=300, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["type", "requestId", "channel", "payload", "offset", "x"]),
            json_values,
            max_size=5,
        )
    )
    def test_arbitrary_envelopes_round_trip_or_fail_cleanly(self, obj: dict[str, object]) -> None:
        for enc in Encoding:
            raw = json.dumps(obj).encode() if enc is Encoding.JSON else msgpack.packb(obj)
            try:
                env = decode(raw, enc)
            except EnvelopeError as exc:
                assert exc.code in codes.ERRORS
                continue
            again = {"type": env.type}
            if env.request_id is not None:
                again["requestId"] = env.request_id
            assert decode(encode({**obj}, enc), enc) == env


class TestFraming:
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
    def test_data_frame_uses_the_minimal_length_encoding(self, size: int) -> None:
        frame = data_frame(b"x" * size, OP_TEXT)
        assert frame[0] == 0x81
        if size < 126:
            assert frame[1] == size and len(frame) == 2 + size
        elif size < 65536:
            assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size
        else:
            assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size
        assert data_frame(b"", OP_BINARY)[0] == 0x82

    def test_frames_parse_back_with_websockets(self) -> None:
        from websockets.frames import Frame
        from websockets.streams import StreamReader

        reader = StreamReader()
        reader.feed_data(data_frame(b"hello" * 30000, OP_TEXT))
        parser = Frame.parse(reader.read_exact, mask=False)
        with pytest.raises(StopIteration) as done:
            next(parser)
        assert done.value.value.data == b"hello" * 30000


class TestCodes:
    def test_ranges_tell_reconnect_from_stop(self) -> None:
        for code, d in codes.CLOSE_CODES.items():
            if 4000 <= code < 4500:
                assert d.reconnect
            if 4500 <= code < 5000:
                assert not d.reconnect
        assert codes.is_reconnect(1006) and codes.is_reconnect(4499) and not codes.is_reconnect(4999)
        assert not codes.is_reconnect(1000)

    def test_reasons_fit_a_close_frame(self) -> None:
        for d in codes.CLOSE_CODES.values():
            assert len(d.reason.encode()) <= 123
        with pytest.raises(ValueError):
            codes.Disconnect(4999, "x" * 124, False, "")

    def test_every_documented_error_code_exists(self) -> None:
        doc = (__import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
        for code in codes.ERRORS:
            assert f"`{code}`" in doc, code
        for code in codes.CLOSE_CODES:
            assert f"| {code} |" in doc, code

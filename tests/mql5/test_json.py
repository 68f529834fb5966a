"""The shipped Json.mqh, compiled by the harness, against Python's json as the reference."""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.mql5 import PROGRAMS

pytestmark = pytest.mark.mql5


def run_probe(binary: Path, tmp: Path, docs: list[bytes]) -> list[str]:
    files = tmp / "files"
    files.mkdir(exist_ok=True)
    (files / "json_in.txt").write_bytes(b"".join(d.hex().encode() + b"\n" for d in docs))
    env = dict(os.environ, MQL_FILES_DIR=str(files))
    subprocess.run([str(binary)], env=env, check=True, capture_output=True, timeout=120)
    lines = (files / "json_out.txt").read_bytes().decode("utf-8").split("\n")
    assert lines[-1] == ""
    return lines[:-1]


@pytest.fixture(scope="module")
def probe(mql5_build: Callable[..., Path]) -> Path:
    return mql5_build(PROGRAMS / "JsonProbe.mq5")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _bad_constant(name: str) -> float:
    raise ValueError(name)


def reference_parse(doc: bytes) -> Any:
    """Python's strict reading, plus the documented extra refusals (duplicates, U+0000, long ints)."""
    text = doc.decode("utf-8")  # raises on invalid UTF-8
    value = json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_bad_constant)

    def check(v: Any, depth: int) -> None:
        if depth > 33:
            raise ValueError("deep")
        if isinstance(v, str):
            if "\x00" in v:
                raise ValueError("nul")
            v.encode("utf-8")  # lone surrogates raise
        elif isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, int):
            if len(str(abs(v))) > 18:
                raise ValueError("long int")
        elif isinstance(v, float):
            if math.isinf(v):
                raise ValueError("inf")
        elif isinstance(v, list):
            for x in v:
                check(x, depth + 1)
        else:
            for k, x in v.items():
                check(k, depth + 1)
                check(x, depth + 1)

    check(value, 1)
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-15, abs_tol=0.0) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


VALID = [
    b'{"type":"welcome","payload":{"connectionId":"c-1","limits":{"maxMessageBytes":65536}}}',
    b"[1,-0,0.5,-1.25e-3,1E+2,123456789012345678,-123456789012345678]",
    b' \t\r\n{ "a" : [ true , false , null ] }\n',
    '{"s":"\u00e9\u4e2d\U0001f600","e":"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/"}'.encode(),
    b'"just a string"',
    b"0",
    b"[]",
    b"{}",
]
INVALID = [
    b"",
    b" ",
    b"{",
    b"}",
    b"[1,]",
    b'{"a":1,}',
    b"[01]",
    b"[1.]",
    b"[.5]",
    b"[1e]",
    b"[+1]",
    b"NaN",
    b"[Infinity]",
    b"[-Infinity]",
    b"[tru]",
    b"[nul]",
    b"{'a':1}",
    b'{"a" 1}',
    b'{"a":1 "b":2}',
    b'{"a":1,"a":2}',
    b'["\\x41"]',
    b'["\\u12"]',
    b'["\\ud800"]',
    b'["\\udc00"]',
    b'["\\ud800\\u0041"]',
    b'["\\u0000"]',
    b'["a\tb"]',
    b'["a\nb"]',
    b'["\xff"]',
    b'["\xc0\xaf"]',
    b'["\xed\xa0\x80"]',
    b'["\xf4\x90\x80\x80"]',
    b'["\xe2\x82"]',
    b"[1] x",
    b"[1][2]",
    b"// c\n1",
    b"/* c */ 1",
    b"1234567890123456789",
    b"[" * 40 + b"]" * 40,
    b"[1e400]",
]


def test_valid_documents_round_trip(probe: Path, tmp_path: Path) -> None:
    out = run_probe(probe, tmp_path, VALID)
    for doc, line in zip(VALID, out, strict=True):
        assert line.startswith("OK "), (doc, line)
        assert same(json.loads(line[3:]), reference_parse(doc)), (doc, line)


def test_invalid_documents_are_refused(probe: Path, tmp_path: Path) -> None:
    out = run_probe(probe, tmp_path, INVALID)
    for doc, line in zip(INVALID, out, strict=True):
        assert line.startswith("ERR "), (doc, line)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(json_values, min_size=1, max_size=20), st.booleans())
def test_generated_documents_match_python(
    probe: Path, tmp_path: Path, values: list[Any], ascii: bool
) -> None:
    docs = [json.dumps(v, ensure_ascii=ascii).encode("utf-8") for v in values]
    out = run_probe(probe, tmp_path, docs)
    for value, line in zip(values, out, strict=True):
        assert line.startswith("OK "), (value, line)
        assert same(json.loads(line[3:]), value), (value, line)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.binary(max_size=40)
        | st.text(alphabet='{}[]",:0123456789.eE+-tfnrul \\', max_size=30).map(lambda s: s.encode()),
        min_size=1,
        max_size=30,
    )
)
def test_arbitrary_bytes_agree_with_reference(probe: Path, tmp_path: Path, docs: list[bytes]) -> None:
    docs = [d.replace(b"\n", b" ") for d in docs]
    out = run_probe(probe, tmp_path, docs)
    for doc, line in zip(docs, out, strict=True):
        try:
            expected = reference_parse(doc)
        except (ValueError, UnicodeDecodeError, RecursionError):
            assert line.startswith("ERR "), (doc, line)
            continue
        assert line.startswith("OK "), (doc, line)
        assert same(json.loads(line[3:]), expected), (doc, line)

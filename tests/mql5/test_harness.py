"""The harness itself: the translator's rewrites, the lint, and the runtime's model of the built-ins."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.mql5 import EXPERTS, HARNESS, INCLUDE, PROGRAMS

sys.path.insert(0, str(HARNESS))

from lint import lint_files, lint_source
from translate import TranslationError, translate_file

pytestmark = pytest.mark.mql5

SHIPPED = [
    *sorted(INCLUDE.glob("MTBridge/*.mqh")),
    EXPERTS / "MTBridgeEA.mq5",
    *sorted(PROGRAMS.glob("*.mq5")),
]


def test_shipped_sources_pass_the_lint() -> None:
    assert [str(f) for f in lint_files(SHIPPED)] == []


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("void f(CFoo *p) { p->Run(); }", "'->'"),
        ("auto x = 5;", "'auto' is C++"),
        ("int *p = nullptr;", "'nullptr' is C++"),
        ("unsigned int x = 1;", "'unsigned' is C++"),
        ("long long x = 1;", "'long long' is C++"),
        ("ulong x = 10ULL;", "integer suffix"),
        ("void f(int a[]) {}", "must be passed by reference"),
        ("class CFoo { public: int m_x = 5; };", "cannot be initialised"),
        ("void f() { int y = 1; int &x = y; }", "reference variables"),
        ("#if 1\n#endif", "#if is not MQL5"),
        ('void f() { string s = "n=" + 5; }', "format numbers explicitly"),
        ("class CFoo {}; void f(CFoo obj) {}", "object parameter"),
        ("int a[], b[];", "one array per declaration"),
        ("class CFoo {}; CFoo *p; void f() { CFoo p; }", "never reuse a pointer's name"),
        ("void f() { int v[] = {1}; for(int x : v) {} }", "range-based for"),
        ("namespace N {}", "'namespace' is C++"),
    ],
)
def test_lint_rejects_cpp_only_constructs(snippet: str, expected: str) -> None:
    findings = [str(f) for f in lint_source(snippet)]
    assert any(expected in f for f in findings), findings


def test_translator_rewrites(tmp_path: Path) -> None:
    src = tmp_path / "t.mq5"
    src.write_text(
        "#property strict\ninput double Lot = 0.1;\nclass CItem { public: int v; };\n"
        "CItem *g_item = NULL;\nuchar g_buf[];\nuchar g_key[4];\n"
        'void OnStart() { string s = "a" "b"; g_item = new CItem(); g_item.v = \'x\'; delete g_item; }\n'
    )
    cpp = " ".join(translate_file(src, [INCLUDE]).split())
    assert "#property" not in cpp
    assert 'const double Lot = ::mql::input<double>(u"Lot", 0.1);' in cpp
    assert "::mql::Array<uchar> g_buf;" in cpp
    assert "::mql::SArray<uchar, 4> g_key;" in cpp
    assert '::mql::string(u"a" u"b")' in cpp
    assert "g_item->v = u'x'" in cpp
    assert "CItem *g_item = nullptr;" in cpp


def test_translator_refuses_dll_imports(tmp_path: Path) -> None:
    src = tmp_path / "t.mq5"
    src.write_text('#import "kernel32.dll"\nint GetTickCount();\n#import\nvoid OnStart() {}\n')
    with pytest.raises(TranslationError, match="#import"):
        translate_file(src, [INCLUDE])


@pytest.fixture(scope="module")
def probe(mql5_build: Callable[..., Path]) -> Path:
    return mql5_build(PROGRAMS / "RuntimeProbe.mq5")


def _run(probe: Path, tmp: Path, **env: str) -> dict[str, str]:
    files = tmp / "files"
    files.mkdir(exist_ok=True)
    proc = subprocess.run(
        [str(probe)],
        env=dict(os.environ, MQL_FILES_DIR=str(files), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key] = value
    return out


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data = conn.recv(5)
            conn.sendall(data)
            conn.recv(1)  # hold the connection until the client closes

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t


def test_runtime_builtins(probe: Path, tmp_path: Path) -> None:
    out = _run(probe, tmp_path)
    assert out["utf8_count"] == "6 hex=c3a9e282ac00"  # count -1 copies the NUL too
    assert out["no_shrink"] == "10 n=3"
    assert out["sha1"] == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert out["base64"] == "YWJj"
    assert out["strlen_utf16"] == "2"
    assert out["rand"] == "41,18467"  # unseeded MathRand starts from seed 1
    assert out["rw_keeps"] == "3"
    assert out["write_truncates"] == "0"


@pytest.mark.parametrize("quirk", [False, True])
def test_runtime_sockets_and_readable_quirk(probe: Path, tmp_path: Path, quirk: bool) -> None:
    srv, t = _echo_server()
    env = {"MQL_INPUT_Port": str(srv.getsockname()[1])}
    if quirk:
        env["MQL_QUIRK_READABLE_EMPTY"] = "1"
    try:
        out = _run(probe, tmp_path, **env)
    finally:
        srv.close()
        t.join(10)
    assert out["connected"] == "true"
    assert out["readable_empty"] == ("1" if quirk else "0")
    assert out["readable_data"] == "5"
    assert out["read"] == "5 hello"
    assert out["timeout"] == "-1 error=5273 still_connected=true"
    assert out["closed_twice"] == "false error=5270"


def test_out_of_range_index_is_a_critical_error(probe: Path, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    env = dict(os.environ, MQL_FILES_DIR=str(files), MQL_INPUT_OutOfRange="1")
    proc = subprocess.run([str(probe)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "array out of range" in proc.stderr

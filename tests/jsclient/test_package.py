"""The npm package clients/js as a user gets it.

- The hub's browser copy in bridge/dashboard/static is in step with the package (one source).
- The TypeScript declarations type a usage file under ``tsc --noEmit`` (strict).
- ``npm pack`` gives a tarball with the sources, types and README and nothing else; a fresh Node
  project in a temporary folder installs it, type-checks an import of it, and runs a
  subscribe-publish round trip against a live hub, in JSON and MessagePack, with `ws` and with the
  runtime's global WebSocket.

The fresh project's dependencies are pinned to the versions of clients/js/package-lock.json and
installed with ``--prefer-offline``: from npm's cache, which ``npm ci`` in clients/js filled
(scripts/test.sh), or else the npm registry.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from tests.support.hub import HubProcess
from tests.support.node import PKG, global_websocket_flags, need_node_package, run


def _locked(name: str) -> str:
    lock = json.loads((PKG / "package-lock.json").read_text())
    return str(lock["packages"][f"node_modules/{name}"]["version"])


def test_static_copy_is_in_step_with_the_package() -> None:
    need_node_package("esbuild")
    out = run(["node", "scripts/sync-static.mjs", "--check"], PKG)
    assert "in step" in out


def test_type_declarations_check_a_typed_usage() -> None:
    need_node_package("typescript", "@types/ws")
    run(["node", "node_modules/typescript/bin/tsc", "--noEmit", "-p", "test/tsconfig.json"], PKG)


def test_packed_tarball_installs_in_a_fresh_project_and_round_trips(tmp_path: Path) -> None:
    need_node_package()
    packed = tmp_path / "packed"
    packed.mkdir()
    info = json.loads(run(["npm", "pack", "--json", "--pack-destination", str(packed)], PKG))
    tarball = packed / info[0]["filename"]
    assert info[0]["name"] == "@mtbridge/client"

    with tarfile.open(tarball) as tar:
        files = sorted(m.name.removeprefix("package/") for m in tar.getmembers() if m.isfile())
    assert files == [
        "README.md",
        "package.json",
        "src/msgpack.d.ts",
        "src/msgpack.js",
        "src/mtbridge.d.ts",
        "src/mtbridge.js",
    ], files

    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(
        json.dumps(
            {
                "name": "fresh-app",
                "private": True,
                "type": "module",
                "dependencies": {"@mtbridge/client": f"file:{tarball}", "ws": _locked("ws")},
                "overrides": {"@msgpack/msgpack": _locked("@msgpack/msgpack")},
            },
            indent=2,
        )
    )
    npm_install = ["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"]
    run(npm_install, app, timeout=600)
    installed = app / "node_modules" / "@mtbridge" / "client"
    assert not installed.is_symlink(), "the tarball is installed, not a link to the source tree"
    codec = json.loads((app / "node_modules" / "@msgpack" / "msgpack" / "package.json").read_text())
    assert codec["version"] == _locked("@msgpack/msgpack")
    shutil.copy(PKG / "test" / "consumer" / "roundtrip.mjs", app / "roundtrip.mjs")

    # The installed tarball's declarations resolve through its "exports" in a TypeScript project
    # (TypeScript from clients/js's lock file; the app itself installs none).
    (app / "check.ts").write_text(
        'import { MTBridgeClient, type Signal } from "@mtbridge/client";\n'
        'import { msgpackCodec } from "@mtbridge/client/msgpack";\n'
        'const c = new MTBridgeClient("ws://127.0.0.1:8765/ws", { token: "t", codec: msgpackCodec });\n'
        'void c.subscribe("signals:alpha", (s: Signal, { offset }) => console.log(s.id, offset));\n'
        "// @ts-expect-error: an unknown encoding\n"
        'void new MTBridgeClient("ws://x/ws", { encoding: "cbor" });\n'
    )
    (app / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "module": "NodeNext",
                    "moduleResolution": "NodeNext",
                    "target": "ES2022",
                    "lib": ["ES2022", "DOM"],
                    "types": [],
                    "strict": True,
                    "noEmit": True,
                },
                "files": ["check.ts"],
            }
        )
    )
    run(["node", str(PKG / "node_modules" / "typescript" / "bin" / "tsc"), "-p", "tsconfig.json"], app)

    hub = HubProcess(tmp_path / "hub")
    hub.start()
    try:
        engine = hub.token("engine", "packed-engine", publish=["signals:*"], subscribe=["signals:*"])
        dash = hub.token("dashboard", "packed-dash", accounts=["*"])
        global_flags = global_websocket_flags()
        for encoding in ("json", "msgpack"):
            for impl, flags in (("ws", []), ("global", global_flags)):
                cmd = ["node", *flags, "roundtrip.mjs", hub.url, engine, dash, encoding, impl]
                out = run(cmd, app, timeout=120)
                result = json.loads(out.strip().splitlines()[-1])
                assert result == {
                    "encoding": encoding,
                    "protocol": f"mtbridge.v1.{encoding}",
                    "expectedProtocol": f"mtbridge.v1.{encoding}",
                    "publishedOffset": 1,
                    "receivedOffset": 1,
                    "sameId": True,
                    "volume": 0.25,
                    "sl": 1.07,
                }, (encoding, impl, result)
    finally:
        hub.stop()

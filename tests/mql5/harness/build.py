"""Translate an MQL5 program and compile it with g++, caching the binary by the hash of its inputs.

Usage: python build.py PROGRAM.mq5 [-o BINARY] [--no-sanitize]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
sys.path.insert(0, str(HARNESS))

from translate import RUNTIME_DIR, Program, TranslationError, _load, translate_file  # noqa: E402

__all__ = ["DEFAULT_BUILD_DIR", "INCLUDE_DIRS", "BuildError", "build"]

REPO = HARNESS.parents[2]
DEFAULT_BUILD_DIR = REPO / "tests" / "mql5" / "build"
INCLUDE_DIRS = [REPO / "mql5" / "Include"]
CXXFLAGS = [
    "-std=c++17",
    "-O2",
    "-g",
    "-Wall",
    "-Wno-unused-function",
    "-Werror=return-type",
    "-Werror=uninitialized",
    "-Werror=narrowing",
]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
LIBS = ["-lssl", "-lcrypto"]


class BuildError(Exception):
    """Translation or compilation failed; the message holds the compiler's output."""


def _inputs_hash(source: Path, include_dirs: list[Path], sanitize: bool) -> str:
    prog = Program()
    _load(source, prog, include_dirs)
    h = hashlib.sha256()
    files = sorted(prog.files) + sorted(RUNTIME_DIR.glob("*.hpp")) + [HARNESS / "translate.py"]
    for f in files:
        h.update(str(f).encode())
        h.update(f.read_bytes())
    h.update(" ".join(CXXFLAGS + (SANITIZE if sanitize else [])).encode())
    return h.hexdigest()[:20]


def build(
    source: Path,
    build_dir: Path = DEFAULT_BUILD_DIR,
    *,
    sanitize: bool = True,
    include_dirs: list[Path] | None = None,
) -> Path:
    """Return the path of an up-to-date binary for an MQL5 program."""
    source = source.resolve()
    dirs = include_dirs if include_dirs is not None else INCLUDE_DIRS
    try:
        digest = _inputs_hash(source, dirs, sanitize)
        build_dir.mkdir(parents=True, exist_ok=True)
        binary = build_dir / f"{source.stem}-{digest}{'-san' if sanitize else ''}"
        if binary.exists():
            return binary
        cpp = build_dir / f"{source.stem}-{digest}.cpp"
        cpp.write_text(translate_file(source, dirs), encoding="utf-8")
    except TranslationError as exc:
        raise BuildError(str(exc)) from exc
    fd, tmp = tempfile.mkstemp(dir=build_dir, prefix=".tmp-")
    os.close(fd)
    cmd = ["g++", *CXXFLAGS, *(SANITIZE if sanitize else []), "-o", tmp, str(cpp), *LIBS]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise BuildError(f"g++ failed for {source}:\n{proc.stderr[-20000:]}")
    os.replace(tmp, binary)
    return binary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="translate and compile an MQL5 program")
    ap.add_argument("source", type=Path)
    ap.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    ap.add_argument("--no-sanitize", action="store_true")
    args = ap.parse_args(argv)
    try:
        print(build(args.source, args.build_dir, sanitize=not args.no_sanitize))
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

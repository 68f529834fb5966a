"""Translate a documented subset of MQL5 into C++17 for the harness runtime (runtime/mql5rt.hpp).

The subset is described in docs/mql5.md. The translation is token based: MQL5 and C++ share their
expression grammar, so only the constructs that differ are rewritten (strings, arrays, `.` on object
pointers, inputs, includes, `#property`). Anything outside the subset is left for g++ or lint.py to
reject, never silently reinterpreted.

Usage: python translate.py PROGRAM.mq5 -o OUT.cpp [-I INCLUDE_DIR ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Token", "TranslationError", "main", "tokenize", "translate_file"]

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"

# Includes of MetaQuotes' standard library that the runtime provides itself (our own stand-ins).
RUNTIME_PROVIDED = {"trade/trade.mqh"}

BUILTIN_TYPES = {
    "bool",
    "char",
    "uchar",
    "short",
    "ushort",
    "int",
    "uint",
    "long",
    "ulong",
    "float",
    "double",
    "string",
    "datetime",
    "color",
    "void",
}
RUNTIME_CLASSES = {"CTrade"}
RUNTIME_STRUCTS = {
    "MqlTradeRequest",
    "MqlTradeResult",
    "MqlTradeTransaction",
    "MqlTick",
    "MqlTradeCheckResult",
}
HANDLERS = ("OnInit", "OnDeinit", "OnTimer", "OnTick", "OnTradeTransaction", "OnStart")

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+|\\\n|\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<chr>'(?:[^'\\\n]|\\.)+')
  | (?P<num>0[xX][0-9A-Fa-f]+[A-Za-z0-9]*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z0-9]*)
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<include>\#[ \t]*include[ \t]*<[^>\n]*>)
  | (?P<pp>\#[ \t]*[A-Za-z_]+)
  | (?P<punct>->|::|<<=|>>=|\+\+|--|&&|\|\||<<|>>|[<>=!+\-*/%&|^]=|[{}()\[\];,.<>=!+\-*/%&|^~?:\#])
    """,
    re.VERBOSE | re.DOTALL,
)


class TranslationError(Exception):
    """A construct outside the subset, reported with its file and line."""


@dataclass
class Token:
    kind: str
    text: str
    file: str
    line: int

    @property
    def trivia(self) -> bool:
        return self.kind in ("ws", "comment")


def tokenize(source: str, filename: str = "<mql5>") -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    line = 1
    while pos < len(source):
        m = _TOKEN_RE.match(source, pos)
        if not m or m.end() == pos:
            raise TranslationError(f"{filename}:{line}: cannot tokenize {source[pos : pos + 20]!r}")
        kind = m.lastgroup or "punct"
        text = m.group(0)
        tokens.append(Token(kind, text, filename, line))
        line += text.count("\n")
        pos = m.end()
    return tokens


@dataclass
class Program:
    tokens: list[Token] = field(default_factory=list)
    included: set[Path] = field(default_factory=set)
    files: list[Path] = field(default_factory=list)


def _resolve_include(spec: str, angle: bool, current: Path, include_dirs: list[Path]) -> Path | None:
    rel = spec.replace("\\", "/")
    candidates = [] if angle else [current.parent / rel]
    candidates += [d / rel for d in include_dirs]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    # MetaEditor's file system is case-insensitive
    for base in ([] if angle else [current.parent]) + include_dirs:
        probe = base
        ok = True
        for part in rel.split("/"):
            if not probe.is_dir():
                ok = False
                break
            matches = [p for p in probe.iterdir() if p.name.lower() == part.lower()]
            if not matches:
                ok = False
                break
            probe = matches[0]
        if ok and probe.is_file():
            return probe.resolve()
    return None


def _load(path: Path, prog: Program, include_dirs: list[Path]) -> None:
    """Tokenize a file and splice its includes in place (each file once, as MQL5 does)."""
    path = path.resolve()
    if path in prog.included:
        return
    prog.included.add(path)
    prog.files.append(path)
    raw = path.read_bytes()
    if raw.startswith(b"\xff\xfe"):
        text = raw[2:].decode("utf-16-le")
    elif raw.startswith(b"\xef\xbb\xbf"):
        text = raw[3:].decode("utf-8")
    else:
        text = raw.decode("utf-8")
    toks = tokenize(text, str(path))
    prog.tokens.append(Token("line", f'\n#line 1 "{path}"\n', str(path), 1))
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "include":
            spec = t.text[t.text.index("<") + 1 : -1].strip()
            if spec.replace("\\", "/").lower() not in RUNTIME_PROVIDED:
                target = _resolve_include(spec, True, path, include_dirs)
                if target is None:
                    raise TranslationError(f"{t.file}:{t.line}: include not found: {spec}")
                _load(target, prog, include_dirs)
                prog.tokens.append(Token("line", f'\n#line {t.line + 1} "{path}"\n', str(path), t.line))
            i += 1
            while i < len(toks) and toks[i].kind in ("ws", "comment") and toks[i].text != "\n":
                i += 1
            i += 1  # the newline: the #line directive above numbers the next line
            continue
        if t.kind == "pp":
            directive = t.text[1:].strip()
            end = i + 1
            while end < len(toks) and not (toks[end].kind == "ws" and toks[end].text == "\n"):
                end += 1
            rest = [x for x in toks[i + 1 : end] if not x.trivia]
            if directive == "property":
                i = end
                continue
            if directive == "include":
                if rest and rest[0].kind == "str":
                    spec, angle = rest[0].text[1:-1], False
                else:
                    raise TranslationError(f"{t.file}:{t.line}: malformed #include")
                if spec.replace("\\", "/").lower() in RUNTIME_PROVIDED:
                    i = end
                    continue
                target = _resolve_include(spec, angle, path, include_dirs)
                if target is None:
                    raise TranslationError(f"{t.file}:{t.line}: include not found: {spec}")
                _load(target, prog, include_dirs)
                prog.tokens.append(Token("line", f'\n#line {t.line + 1} "{path}"\n', str(path), t.line))
                i = end + 1
                continue
            if directive == "import":
                raise TranslationError(f"{t.file}:{t.line}: #import (DLL calls) is outside the subset")
        prog.tokens.append(t)
        i += 1


class _Translator:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.sig = [i for i, t in enumerate(tokens) if not t.trivia and t.kind != "line"]
        self.pos_in_sig = {ti: si for si, ti in enumerate(self.sig)}
        self.classes: set[str] = set(RUNTIME_CLASSES)
        self.structs: set[str] = set(RUNTIME_STRUCTS)
        self.enums: set[str] = set()
        self.pointers: set[str] = set()
        self.handlers: set[str] = set()

    def s(self, k: int) -> Token | None:
        """The k-th significant token, or None past either end."""
        return self.toks[self.sig[k]] if 0 <= k < len(self.sig) else None

    def stext(self, k: int) -> str:
        t = self.s(k)
        return t.text if t else ""

    def is_type(self, name: str) -> bool:
        return name in BUILTIN_TYPES or name in self.classes or name in self.structs or name in self.enums

    def collect(self) -> None:
        n = len(self.sig)
        for k in range(n):
            txt = self.stext(k)
            if txt in ("class", "struct", "enum") and (nxt := self.s(k + 1)) and nxt.kind == "ident":
                {"class": self.classes, "struct": self.structs, "enum": self.enums}[txt].add(nxt.text)
        for k in range(n):
            t = self.s(k)
            if t is None or t.kind != "ident":
                continue
            if (t.text in self.classes or t.text in self.structs) and self.stext(k + 1) == "*":
                name = self.s(k + 2)
                if name and name.kind == "ident" and self.stext(k - 1) not in (".", "->", "::"):
                    self.pointers.add(name.text)
            if t.text in HANDLERS and self.stext(k + 1) == "(" and self.stext(k - 1) in BUILTIN_TYPES:
                depth = 0
                j = k + 1
                while j < n:
                    if self.stext(j) == "(":
                        depth += 1
                    elif self.stext(j) == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                if self.stext(j + 1) == "{" or self.stext(j + 2) == "{":
                    self.handlers.add(t.text)

    def _type_start(self, k: int) -> int:
        """Given the significant index of a declared name, find where its type starts."""
        j = k - 1
        while self.stext(j) in ("&", "*"):
            j -= 1
        # the type is one identifier, possibly template arguments are outside the subset
        start = j
        if self.stext(start - 1) == "const":
            start -= 1
        return start

    def run(self) -> str:
        self.collect()
        out: list[str] = []
        replace: dict[int, str] = {}  # significant index -> replacement text
        drop: set[int] = set()
        n = len(self.sig)
        k = 0
        while k < n:
            t = self.s(k)
            assert t is not None
            txt = t.text
            # input / sinput declarations become const globals initialised from the environment
            if t.kind == "ident" and txt in ("input", "sinput"):
                if self.stext(k + 1) == "group":
                    raise TranslationError(f"{t.file}:{t.line}: 'input group' is outside the subset")
                typ = self.stext(k + 1)
                name = self.stext(k + 2)
                if self.stext(k + 3) != "=":
                    raise TranslationError(f"{t.file}:{t.line}: an input needs a default value")
                j = k + 4
                while j < n and self.stext(j) != ";":
                    j += 1
                replace[k] = "const"
                replace[k + 3] = f'= ::mql::input<{typ}>(u"{name}",'
                replace[j] = ");"
                k += 1
                continue
            if t.kind == "str":
                # merge adjacent literals into one string object
                j = k
                parts = []
                while (tj := self.s(j)) is not None and tj.kind == "str":
                    parts.append("u" + tj.text)
                    if j != k:
                        drop.add(j)
                    j += 1
                replace[k] = "::mql::string(" + " ".join(parts) + ")"
                k = j
                continue
            if t.kind == "chr":
                replace[k] = "u" + txt
            elif txt == "NULL":
                replace[k] = "nullptr"
            elif txt == "this" and self.stext(k + 1) == ".":
                replace[k + 1] = "->"
            elif txt == "[" and self.stext(k + 1) == "]":
                # dynamic array: [const] TYPE [&] NAME [ ]
                name_k = k - 1
                start = self._type_start(name_k)
                typ = self.stext(start + 1) if self.stext(start) == "const" else self.stext(start)
                typ_k = start + 1 if self.stext(start) == "const" else start
                if not self.is_type(typ):
                    raise TranslationError(f"{t.file}:{t.line}: unsupported array declaration")
                ptr = self.stext(typ_k + 1) == "*"
                replace[typ_k] = f"::mql::Array<{typ}{'*' if ptr else ''}>"
                if ptr:
                    drop.add(typ_k + 1)
                drop.add(k)
                drop.add(k + 1)
                if self.stext(k + 2) == "[":
                    raise TranslationError(
                        f"{t.file}:{t.line}: multi-dimensional arrays are outside the subset"
                    )
                k += 2
                continue
            elif (
                txt == "["
                and (nm := self.s(k - 1)) is not None
                and nm.kind == "ident"
                and self.is_type(self.stext(k - 2).rstrip("*"))
                and self.stext(k - 3) not in (".", "::")
            ):
                # static array: TYPE NAME [ N ]
                j = k + 1
                depth = 1
                while j < n and depth:
                    if self.stext(j) == "[":
                        depth += 1
                    elif self.stext(j) == "]":
                        depth -= 1
                    j += 1
                size = " ".join(self.stext(x) for x in range(k + 1, j - 1))
                typ_k = k - 2
                replace[typ_k] = f"::mql::SArray<{self.stext(typ_k)}, {size}>"
                for x in range(k, j):
                    drop.add(x)
                k = j
                continue
            elif t.kind == "ident" and txt in self.pointers and self.stext(k - 1) not in ("::",):
                # skip call arguments and subscripts, then turn '.' into '->'
                j = k + 1
                while self.stext(j) in ("(", "["):
                    opener = self.stext(j)
                    closer = ")" if opener == "(" else "]"
                    depth = 0
                    while j < n:
                        if self.stext(j) == opener:
                            depth += 1
                        elif self.stext(j) == closer:
                            depth -= 1
                            if depth == 0:
                                break
                        j += 1
                    j += 1
                if self.stext(j) == ".":
                    replace[j] = "->"
            k += 1
        for ti, tok in enumerate(self.toks):
            si = self.pos_in_sig.get(ti)
            if si is not None and si in drop:
                continue
            if si is not None and si in replace:
                out.append(replace[si])
            else:
                out.append(tok.text)
        return "".join(out)


def translate_file(path: Path, include_dirs: list[Path]) -> str:
    prog = Program()
    _load(path, prog, include_dirs)
    tr = _Translator(prog.tokens)
    body = tr.run()
    has = {h: h in tr.handlers for h in HANDLERS}
    lines = [
        "// generated by tests/mql5/harness/translate.py - do not edit",
        f'#include "{RUNTIME_DIR / "mql5rt.hpp"}"',
        "namespace mqlprog {",
        "using namespace ::mql;",
        body,
        "\n}  // namespace mqlprog",
        '#line 1 "<harness main>"',
        "int main(int argc, char **argv) {",
        "    ::mql::rt_init(argc, argv);",
    ]
    if has["OnStart"]:
        lines += ["    mqlprog::OnStart();", "    ::mql::rt_shutdown();", "    return 0;", "}"]
        return "\n".join(lines) + "\n"
    if has["OnTimer"]:
        lines.append("    ::mql::rt().on_timer = [] { mqlprog::OnTimer(); };")
    if has["OnTick"]:
        lines.append("    ::mql::rt().on_tick = [] { mqlprog::OnTick(); };")
    if has["OnTradeTransaction"]:
        lines.append(
            "    ::mql::rt().on_trade_tx = [](const ::mql::MqlTradeTransaction &t, "
            "const ::mql::MqlTradeRequest &q, const ::mql::MqlTradeResult &r) "
            "{ mqlprog::OnTradeTransaction(t, q, r); };"
        )
    lines.append("    int init = mqlprog::OnInit();" if has["OnInit"] else "    int init = 0;")
    deinit = "mqlprog::OnDeinit(reason);" if has["OnDeinit"] else "(void)reason;"
    lines += [
        "    if (init != ::mql::INIT_SUCCEEDED) {",
        "        int reason = ::mql::REASON_INITFAILED;",
        f"        {deinit}",
        "        ::mql::rt_shutdown();",
        "        return 3;",
        "    }",
        "    int reason = ::mql::rt_loop();",
        f"    {deinit}",
        "    ::mql::rt_shutdown();",
        "    return 0;",
        "}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("source", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("-I", "--include", type=Path, action="append", default=[])
    args = ap.parse_args(argv)
    try:
        code = translate_file(args.source, [p.resolve() for p in args.include])
    except TranslationError as exc:
        print(f"translate: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(code, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

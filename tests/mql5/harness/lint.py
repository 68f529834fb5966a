"""Lint for MQL5 sources: constructs that g++ would accept after translation but MetaEditor rejects,
and constructs outside the harness subset (docs/mql5.md).

Usage: python lint.py FILE.mq5|FILE.mqh ...   (exit status 1 when something is found)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
sys.path.insert(0, str(HARNESS))

from translate import BUILTIN_TYPES, RUNTIME_CLASSES, RUNTIME_STRUCTS, Token, tokenize  # noqa: E402

__all__ = ["Finding", "cross_check", "lint_files", "lint_source", "main"]

# C++ keywords and library names that MQL5 does not have (or that the subset leaves out)
CPP_ONLY = {
    "auto",
    "nullptr",
    "constexpr",
    "decltype",
    "namespace",
    "using",
    "goto",
    "throw",
    "try",
    "catch",
    "noexcept",
    "mutable",
    "explicit",
    "friend",
    "inline",
    "register",
    "volatile",
    "unsigned",
    "signed",
    "static_cast",
    "reinterpret_cast",
    "const_cast",
    "typedef",
    "union",
    "std",
    "size_t",
    "int64_t",
    "uint64_t",
    "int32_t",
    "uint32_t",
    "wchar_t",
    "char16_t",
    "char32_t",
    "static_assert",
    "alignas",
    "alignof",
    "thread_local",
    "co_await",
    "co_return",
    "co_yield",
    "concept",
    "requires",
    "export",
    "and",
    "or",
    "not",
    "xor",
    "bitand",
    "bitor",
    "compl",
    "not_eq",
    "and_eq",
    "or_eq",
    "xor_eq",
}
ALLOWED_DIRECTIVES = {"#include", "#define", "#undef", "#ifdef", "#ifndef", "#else", "#endif", "#property"}


@dataclass
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def lint_source(
    text: str,
    filename: str = "<mql5>",
    pointers: dict[str, str] | None = None,
    objects: dict[str, str] | None = None,
) -> list[Finding]:
    """Findings for one file; names of pointers and objects are collected into the given maps."""
    shared = pointers is not None
    pointers = {} if pointers is None else pointers
    objects = {} if objects is None else objects
    toks = [t for t in tokenize(text, filename) if not t.trivia]
    out: list[Finding] = []

    def add(t: Token, msg: str) -> None:
        out.append(Finding(t.file, t.line, msg))

    classes = set(RUNTIME_CLASSES) | set(RUNTIME_STRUCTS)
    for i, t in enumerate(toks):
        if t.text in ("class", "struct") and i + 1 < len(toks) and toks[i + 1].kind == "ident":
            classes.add(toks[i + 1].text)

    paren = 0
    brace_stack: list[str] = []  # "class" for class/struct bodies, "block" otherwise
    pending_class = False
    for i, t in enumerate(toks):
        prev = toks[i - 1].text if i else ""
        nxt = toks[i + 1].text if i + 1 < len(toks) else ""
        nxt2 = toks[i + 2].text if i + 2 < len(toks) else ""
        if t.text in ("class", "struct"):
            pending_class = True
        if t.text == ";" and pending_class and paren == 0:
            pending_class = False  # forward declaration
        if t.text == "{":
            brace_stack.append("class" if pending_class else "block")
            pending_class = False
        elif t.text == "}" and brace_stack:
            brace_stack.pop()
        elif t.text == "(":
            paren += 1
        elif t.text == ")":
            paren = max(0, paren - 1)

        if t.kind == "pp":
            directive = "#" + t.text[1:].strip()
            if directive not in ALLOWED_DIRECTIVES:
                add(t, f"preprocessor directive {directive} is not MQL5 (or outside the subset)")
        if t.kind == "ident" and t.text in CPP_ONLY:
            add(t, f"'{t.text}' is C++, not MQL5")
        if t.text == "->":
            add(t, "'->' does not exist in MQL5: use '.' on object pointers")
        if t.kind == "num" and any(c in t.text.lower() for c in "ul") and not t.text.lower().startswith("0x"):
            add(t, f"integer suffix in {t.text}: MQL5 has none")
        if t.kind == "num" and t.text.lower().startswith("0b"):
            add(t, f"binary literal {t.text} is not MQL5")
        if t.kind == "str" and prev == "+" and i >= 2 and toks[i - 2].kind == "num":
            add(t, "number + string: format numbers explicitly (IntegerToString, DoubleToString)")
        if t.kind == "num" and prev == "+" and i >= 2 and toks[i - 2].kind == "str":
            add(t, "string + number: format numbers explicitly (IntegerToString, DoubleToString)")
        if t.text == "long" and nxt in ("long", "double", "int"):
            add(t, f"'long {nxt}' is C++: MQL5 has long, ulong and double")
        if t.text == "for" and nxt == "(":
            # range-based for: for(T x : y)
            depth = 0
            for j in range(i + 1, len(toks)):
                if toks[j].text == "(":
                    depth += 1
                elif toks[j].text == ")":
                    depth -= 1
                    if depth == 0:
                        break
                elif toks[j].text == ";" and depth == 1:
                    break
                elif toks[j].text == ":" and depth == 1 and toks[j - 1].kind == "ident":
                    if not any(toks[k].text == "?" for k in range(i, j)):
                        add(toks[j], "range-based for is C++, not MQL5")
                    break
        is_type = t.text in BUILTIN_TYPES or t.text in classes
        # pointer and object declarations, for the translator's '.' rule
        if t.text in classes and nxt == "*" and i + 2 < len(toks) and toks[i + 2].kind == "ident":
            pointers.setdefault(nxt2, f"{filename}:{t.line}")
        elif (
            t.text in classes
            and i + 1 < len(toks)
            and toks[i + 1].kind == "ident"
            and prev != "new"
            and nxt2 in (";", "=", ",", ")", "(")
        ):
            objects.setdefault(nxt, f"{filename}:{t.line}")
        # reference variables: T &x = ... outside parameter lists
        if (
            is_type
            and nxt == "&"
            and paren == 0
            and i + 3 < len(toks)
            and toks[i + 2].kind == "ident"
            and toks[i + 3].text == "="
        ):
            add(t, "reference variables do not exist in MQL5")
        # parameters: arrays and objects are passed by reference only
        if paren > 0 and is_type and i + 1 < len(toks) and toks[i + 1].kind == "ident":
            if nxt2 == "[" and i + 3 < len(toks) and toks[i + 3].text == "]":
                add(t, f"array parameter '{nxt}' must be passed by reference ('{t.text} &{nxt}[]')")
            elif (
                t.text in classes
                and nxt2 in (",", ")")
                and prev not in ("new",)
                and toks[i - 1].text in ("(", ",", "const")
            ):
                add(t, f"object parameter '{nxt}' must be passed by reference or pointer")
        # member initialisers inside a class body: `int m_x = 5;`
        in_class = bool(brace_stack) and brace_stack[-1] == "class"
        if (
            in_class
            and paren == 0
            and is_type
            and prev in (";", "{", "}", ":")
            and i + 2 < len(toks)
            and toks[i + 1].kind == "ident"
            and nxt2 == "="
        ):
            add(t, "class members cannot be initialised in their declaration (use the constructor)")
        # multiple declarators of arrays, multi-dimensional dynamic arrays
        if t.text == "[" and nxt == "]" and nxt2 == "[":
            add(t, "multi-dimensional dynamic arrays are outside the subset")
        if (
            t.text == "]"
            and prev == "["
            and nxt == ","
            and paren == 0
            and i + 2 < len(toks)
            and toks[i + 2].kind == "ident"
        ):
            add(t, "declare one array per declaration (the translator's subset)")

    if not shared:
        out += cross_check(pointers, objects)
    return out


def cross_check(pointers: dict[str, str], objects: dict[str, str]) -> list[Finding]:
    """The translator turns `name.` into `name->` for every pointer name, in every file of a program."""
    out = []
    for name, where in pointers.items():
        if name in objects:
            file, _, line = objects[name].rpartition(":")
            out.append(
                Finding(
                    file,
                    int(line),
                    f"'{name}' is an object pointer elsewhere ({where}): "
                    "never reuse a pointer's name for an object",
                )
            )
    return out


def lint_files(paths: list[Path]) -> list[Finding]:
    """Lint files that are compiled together (names are shared across them)."""
    pointers: dict[str, str] = {}
    objects: dict[str, str] = {}
    findings: list[Finding] = []
    for p in paths:
        findings += lint_source(p.read_text(encoding="utf-8"), str(p), pointers, objects)
    return findings + cross_check(pointers, objects)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    findings = lint_files(paths)
    for f in findings:
        print(f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

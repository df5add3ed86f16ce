#!/usr/bin/env python3
"""Fails when two source files of a crate import each other, directly or through others.

Each `.rs` file under a crate's `src/` is a module; an edge a -> b means a names b through
`crate::...` or `super::...` (in a `use` or in a path). A module and its own ancestors or
descendants are one unit (a parent declares its children; a child may use its parent), so
only edges between modules of which neither contains the other count. Prints each cycle
found and exits 1; exits 0 when there are none. Rough by design: it reads paths, not types,
so a name in a comment or a string counts too (keep such paths out of comments).

Usage: python3 scripts/import-cycles.py [crate-dir ...]   (default: every workspace crate)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ["protocol", "engine", "server", "client", "bench", "fuzz"]
PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
# Pairs of files whose types are mutually recursive by design, each with its reason. An edge
# between the two is not counted; a cycle through a third file still is.
ALLOWED = {
    # A namespace holds its sockets and its handlers take a socket; a socket holds its
    # namespace to broadcast and to leave (Socket.IO's own shape: socketioxide has the same).
    # (The engine crate's `namespace` and `socket` modules.)
    frozenset({("namespace",), ("socket",)}),
}
GROUP_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\}", re.S)


def module_of(src: Path, file: Path) -> tuple:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    if parts and parts[0] == "bin":
        return ("<bin>",) + tuple(parts[1:])
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def targets(module: tuple, text: str, modules: set) -> set:
    found = set()
    paths = []
    for m in GROUP_RE.finditer(text):
        base = m.group(2).split("::")[1:]
        for item in re.split(r",", m.group(3)):
            first = item.strip().split("::")[0].split(" ")[0].strip("{} \n")
            if first:
                paths.append((m.group(1), base + [first]))
    for m in PATH_RE.finditer(text):
        paths.append((m.group(1), m.group(2).split("::")[1:]))
    for head, segs in paths:
        if head == "crate":
            base = []
        else:
            base = list(module[:-1]) if module else []
            while segs and segs[0] == "super":
                segs = segs[1:]
                base = base[:-1]
        path = tuple(base + segs)
        # The deepest module the path names.
        while path and path not in modules:
            path = path[:-1]
        if path:
            found.add(path)
    return found


def related(a: tuple, b: tuple) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def cycles(crate: Path) -> list:
    src = crate / "src"
    if not src.is_dir():
        return []
    files = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts[:1]]
    mods = {module_of(src, f): f for f in files}
    modules = set(mods)
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        text = strip_comments(f.read_text(encoding="utf-8"))
        for t in targets(m, text, modules):
            if not related(m, t) and frozenset({m, t}) not in ALLOWED:
                graph[m].add(t)
    # Tarjan's strongly connected components.
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    dirs = [Path(a) for a in sys.argv[1:]] or [ROOT / c for c in CRATES]
    bad = 0
    for crate in dirs:
        for comp in cycles(crate):
            bad += 1
            names = ", ".join("::".join(m) or "<root>" for m in comp)
            print(f"{crate.name}: import cycle among {names}")
    if bad:
        return 1
    print("no import cycles between files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

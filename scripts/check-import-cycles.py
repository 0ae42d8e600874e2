#!/usr/bin/env python3
"""Fails when a crate's top-level modules import each other in a circle.

A module's edges are the `crate::<module>` paths in its code (comments left out); a submodule
counts as its top-level module. Run by scripts/test.sh for every crate of the workspace;
`--graph CRATE` prints one crate's module graph instead.
"""
import glob
import os
import re
import sys


def edges(src_dir):
    out = set()
    for f in glob.glob(os.path.join(src_dir, "**", "*.rs"), recursive=True):
        parts = os.path.relpath(f, src_dir)[:-3].split(os.sep)
        if parts[-1] == "mod":
            parts = parts[:-1]
        if not parts or parts[0] in ("main", "lib") or parts[0] == "bin":
            continue
        code = "\n".join(
            line for line in open(f, encoding="utf-8").read().split("\n")
            if not line.strip().startswith("//")
        )
        for dep in set(re.findall(r"crate::([a-z_0-9]+)", code)):
            if dep != parts[0]:
                out.add((parts[0], dep))
    return out


def cycles(edge_set):
    graph = {}
    for a, b in edge_set:
        graph.setdefault(a, set()).add(b)
    found = []

    def walk(start, node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.append(path + [nxt])
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return found


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # `--graph CRATE`: print that crate's module graph (one line per module, what it imports).
    if len(sys.argv) == 3 and sys.argv[1] == "--graph":
        graph = {}
        for a, b in edges(os.path.join(root, sys.argv[2], "src")):
            graph.setdefault(a, set()).add(b)
        for a in sorted(graph):
            print(f"{a} -> {', '.join(sorted(graph[a]))}")
        return
    bad = False
    for src in sorted(glob.glob(os.path.join(root, "*", "src"))):
        crate = os.path.basename(os.path.dirname(src))
        found = cycles(edges(src))
        for c in found:
            print(f"check-import-cycles: {crate}: {' -> '.join(c)}", file=sys.stderr)
        bad |= bool(found)
    if bad:
        sys.exit(1)
    print("check-import-cycles: no import circle in any crate")


main()

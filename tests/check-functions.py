#!/usr/bin/python3
"""House style (STYLE.md 14, issue 11): no function of the project's C modules is longer than
60 lines and the median stays at or below 15. Functions are found the way clang-format lays
them out (every .c is clang-formatted, a test of its own): a body opens with '{' alone at
column 0 and closes with '}' alone at column 0; the header is the lines above the '{' back to
the previous blank line, comment or directive. Prints the longest and exits 1 when a bound is
broken."""
import os
import statistics
import sys

MAX_LINES, MAX_MEDIAN = 60, 15
MODULES = ["common", "proto", "attest", "sandbox", "pool", "daemon", "cli", "gateway"]


def functions(path):
    lines = open(path, errors="replace").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i] == "{" and i > 0:
            j = i - 1
            while j > 0 and lines[j - 1] and not lines[j - 1].startswith(("}", "#", "/*", " *")) \
                    and not lines[j - 1].endswith((";", "*/", "{")):
                j -= 1
            k = i + 1
            while k < len(lines) and lines[k] != "}":
                k += 1
            yield k - i - 1, "%s:%d" % (path, j + 1), lines[j].strip()
            i = k
        i += 1


root = sys.argv[1] if len(sys.argv) > 1 else "."
found = []
for m in MODULES:
    for d, _, files in os.walk(os.path.join(root, m)):
        for f in sorted(files):
            if f.endswith(".c"):
                found += functions(os.path.join(d, f))
found.sort(reverse=True)
median = statistics.median(n for n, _, _ in found)
print("%d functions, median %.1f lines (at most %d), longest %d (at most %d)" %
      (len(found), median, MAX_MEDIAN, found[0][0], MAX_LINES))
for n, where, name in found[:5]:
    print("  %3d %s %s" % (n, os.path.relpath(where, root), name[:70]))
bad = [f for f in found if f[0] > MAX_LINES]
for n, where, name in bad:
    print("too long: %d lines: %s %s" % (n, os.path.relpath(where, root), name))
sys.exit(1 if bad or median > MAX_MEDIAN else 0)

#!/usr/bin/env python3
"""Reads an aispd log and prints, as JSON, every line that mentions WORD, parsed.

Usage: logfmt.py LOG WORD. A line is "<timestamp> <level> <message>"; a task's event is a
message of key=value fields (daemon/README.md, "Logs"): a bare value is printable ASCII without
space, '"', '\\' or '='; a quoted one is "..." with \\" \\\\ and \\xNN escapes. Prints a list of
{"level": ..., "fields": {...}} (fields null when the message is not key=value all through, so
the test sees such a line), and each field's value unescaped. Exit 1 when the log is unreadable.
"""
import json
import re
import sys

LINE = re.compile(r"^\S+ (debug|info|warn|error) (.*)$")
FIELD = re.compile(r'([a-z_]+)=([!#-<>-\[\]-~]+|"(?:[ !#-\[\]-~]|\\["\\]|\\x[0-9a-f]{2})*")')


def unquote(v):
    if not v.startswith('"'):
        return v
    out, i, s = bytearray(), 0, v[1:-1]
    while i < len(s):
        if s[i] == "\\" and s[i + 1] == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif s[i] == "\\":
            out.append(ord(s[i + 1]))
            i += 2
        else:
            out.append(ord(s[i]))
            i += 1
    return out.decode("utf-8", "replace")


def parse(msg):
    fields, pos = {}, 0
    while pos < len(msg):
        m = FIELD.match(msg, pos)
        if not m or m.group(1) in fields:
            return None
        fields[m.group(1)] = unquote(m.group(2))
        pos = m.end()
        if pos < len(msg):
            if msg[pos] != " ":
                return None
            pos += 1
    return fields or None


def main():
    path, word = sys.argv[1], sys.argv[2]
    try:
        lines = open(path, "rb").read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        print(e, file=sys.stderr)
        return 1
    out = []
    for line in lines:
        if word not in line:
            continue
        m = LINE.match(line)
        out.append({"line": line, "level": m.group(1) if m else None,
                    "fields": parse(m.group(2)) if m else None})
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

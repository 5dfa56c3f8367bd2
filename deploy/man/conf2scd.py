#!/usr/bin/env python3
"""Writes aispd.conf(5) in scdoc from its template and deploy/aispd.conf.example.

The example config documents every key and its default (tests/unit/test-daemon.c loads it and
checks it equals the built-in defaults), so it is the one source of the KEYS section: the man
page cannot drift from the file operators copy. The template's line "@KEYS@" is replaced by:

  [section]              -> "## [section]", the comment above it as its introduction
  # comment lines        -> the description of the keys that follow
  #   indented lines     -> kept as a literal block (aligned lists)
  key = value            -> "*key* = _value_" (the default)
  ;key = value           -> "*key* (not set; for example _value_)"
  ;[section] + ;key ...  -> a commented-out example section: a literal block

usage: conf2scd.py TEMPLATE EXAMPLE OUTPUT
"""
import sys


def esc(text):
    """scdoc markup in plain text: backslash, '*' and '_' are literal."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_")


def render(lines):
    out = []
    doc = []  # the comment block waiting for its keys
    keys = []  # the keys that share it
    example = []  # a commented-out example section

    def flush():
        if example:
            out.extend(["Examples (commented out in the file):", "", "```"] + example + ["```", ""])
            example.clear()
        if not keys and not doc:
            return
        if keys:
            out.extend(k + ("++" if i < len(keys) - 1 else "") for i, k in enumerate(keys))
        text, literal = [], []
        for d in doc:
            if d.startswith("  "):
                literal.append(d)
            else:
                if literal:
                    text.append(("literal", literal[:]))
                    literal.clear()
                text.append(("text", d))
        if literal:
            text.append(("literal", literal[:]))
        para = [esc(t) for kind, t in text if kind == "text"]
        if para:
            out.append(("\t" if keys else "") + " ".join(para))
        for kind, block in text:
            if kind == "literal":
                out.extend(["", "```"] + [b.strip("\n") for b in block] + ["```"])
        out.append("")
        doc.clear()
        keys.clear()

    for raw in lines:
        line = raw.rstrip("\n")
        s = line.strip()
        if s.startswith(";["):
            if example:
                example.append("")
            else:
                flush()
            example.append(s[1:])
        elif s.startswith(";") and example:
            example.append(s[1:])
        elif s.startswith("#"):
            if keys or example:
                flush()
            doc.append(s[1:].removeprefix(" ") if not s.startswith("#   ") else s[1:])
        elif s.startswith("[") and s.endswith("]"):
            flush()
            out.extend(["## " + esc(s), ""])
        elif "=" in s:
            key, value = (p.strip() for p in s.lstrip(";").split("=", 1))
            if s.startswith(";"):
                shown = f"(not set; for example _{esc(value)}_)" if value else "(not set)"
            else:
                shown = f"= _{esc(value)}_" if value else '= "" (empty)'
            keys.append(f"*{esc(key)}* {shown}")
        elif not s:
            if example or keys:
                flush()
    flush()
    return out


def main():
    template, example, output = sys.argv[1:4]
    lines = open(example, encoding="utf-8").readlines()
    # the file's own header (up to the first section) is in the template's DESCRIPTION
    first = next(i for i, l in enumerate(lines) if l.startswith("["))
    keys = render(lines[first:])
    text = open(template, encoding="utf-8").read()
    if "@KEYS@\n" not in text:
        sys.exit(f"{template}: no @KEYS@ line")
    with open(output, "w", encoding="utf-8") as f:
        f.write(text.replace("@KEYS@\n", "\n".join(keys) + "\n"))


main()

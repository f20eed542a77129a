#!/usr/bin/env python3
"""The command line is documented in four places that must agree with the
program: `gradc --help` / `gradc CMD --help` (printed from main.c's option
table), the man page's source docs/gradc.1.md, the reference docs/language.md
(§6) and README.md's command block.  This test requires:

- the usage lines of `gradc --help` verbatim as the synopsis of gradc.1.md, as
  the command block of language.md §6 and of README.md;
- for every command, one set of options in: the usage line, `gradc CMD
  --help`'s option list, gradc.1.md's `### CMD` list and language.md's
  `### gradc CMD` list;
- docs/mkman.py turns gradc.1.md into roff that names every option.

    python3 tests/docs_options.py --gradc build/src/gradc --root SOURCE_DIR
"""

import argparse
import os
import re
import subprocess
import sys

import checklib
from checklib import fail


OPT = re.compile(r"(?<![\w-])(-O[0-3]|--?[a-z][a-z-]*)")
COMMANDS = ["compile", "eval", "derive", "check", "plot"]
def help_text(gradc, *args):
    return subprocess.run([gradc, *args], capture_output=True, text=True, check=True).stdout


def usage_block(text):
    """gradc --help's lines after 'usage:' up to the first blank line, unindented."""
    lines = text.split("\n")
    start = lines.index("usage:") + 1
    end = lines.index("", start)
    return [l[2:] for l in lines[start:end]]


def code_block_after(text, marker):
    """The first fenced code block after the line marker."""
    i = text.index(marker)
    start = text.index("```\n", i) + 4
    return text[start:text.index("```", start)].rstrip("\n").split("\n")


def per_command(lines):
    """Usage lines → {command: options}, continuation lines joined to theirs."""
    out, cur = {}, None
    for l in lines:
        if l.startswith("gradc "):
            m = re.match(r"gradc (\w+)", l)
            cur = m[1] if m else None
            out.setdefault(cur, set())
        if cur in COMMANDS:
            out[cur] |= set(OPT.findall(l.split("FILE.expr", 1)[-1]))
    return out


def section_options(text, heading, sep):
    """Options of the `- `opt ARG`SEP …` items under heading, up to the next heading."""
    i = text.index(heading + "\n")
    body = text[i + len(heading):]
    end = re.search(r"^#{1,3} ", body, re.M)
    body = body[:end.start()] if end else body
    opts = set()
    for l in body.split("\n"):
        m = re.match(r"- ((?:`-[^`]*`(?:, )?)+)" + re.escape(sep), l)
        if m:
            opts |= set(OPT.findall(m[1]))
    return opts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradc", required=True)
    ap.add_argument("--root", required=True)
    a = ap.parse_args()
    read = lambda p: open(os.path.join(a.root, p), encoding="utf-8").read()
    man, lang, readme = read("docs/gradc.1.md"), read("docs/language.md"), read("README.md")

    usage = usage_block(help_text(a.gradc, "--help"))
    for where, block in [("docs/gradc.1.md SYNOPSIS", code_block_after(man, "## SYNOPSIS")),
                         ("docs/language.md §6", code_block_after(lang, "## 6. The command line")),
                         ("README.md's command block", code_block_after(readme, "## The commands"))]:
        if block != usage:
            fail(f"{where} is not gradc --help's usage:\n  " + "\n  ".join(block)
                 + "\n  --- gradc --help:\n  " + "\n  ".join(usage))

    from_usage = per_command(usage)
    for cmd in COMMANDS:
        h = help_text(a.gradc, cmd, "--help")
        listed = set()
        for l in h.split("options:\n", 1)[1].split("\n"):
            m = re.match(r"  (-\S+)", l)
            if m:
                listed.add(m[1])
        sets = {"usage line": from_usage.get(cmd, set()),
                f"gradc {cmd} --help": listed,
                f"gradc.1.md ### {cmd}": section_options(man, "### " + cmd, ":"),
                f"language.md ### gradc {cmd}": section_options(lang, "### gradc " + cmd, " —")}
        ref = sets[f"gradc {cmd} --help"]
        for where, s in sets.items():
            if s != ref:
                fail(f"{cmd}: {where} has {sorted(s)}; gradc {cmd} --help has {sorted(ref)} "
                     f"(missing {sorted(ref - s)}, extra {sorted(s - ref)})")

    sys.path.insert(0, os.path.join(a.root, "docs"))
    import mkman
    roff = mkman.convert(man, "test").split("\n")
    in_roff, sub = {}, None
    for i, l in enumerate(roff[:-1]):
        if l.startswith(".SS ") or l.startswith(".SH "):
            sub = l[4:]
        elif l == ".TP" and sub in COMMANDS:
            plain = roff[i + 1].replace("\\fB", "").replace("\\fR", "").replace("\\-", "-")
            in_roff.setdefault(sub, set()).update(OPT.findall(plain))
    for cmd in COMMANDS:
        if in_roff.get(cmd) != from_usage[cmd]:
            fail(f"the roff man page lists {sorted(in_roff.get(cmd, []))} for {cmd}")
    print(f"{'ok' if not checklib.failures else str(checklib.failures) + ' failed'}")
    return 1 if checklib.failures else 0


if __name__ == "__main__":
    sys.exit(main())

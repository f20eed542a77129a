#!/usr/bin/env python3
"""mkman.py IN.md OUT.1 VERSION — turns docs/gradc.1.md into the roff man page.

gradc.1.md is the one source of the man page; it uses a small subset of
Markdown: `# name(1) -- what`, `## SECTION`, `### subsection`, fenced code,
paragraphs, `- item` lists whose items may start with `` `-o FILE`: ``
(an option: a tagged paragraph), and inline `code`.  tests/docs_options.py
checks its option lists against `gradc CMD --help` and docs/language.md.
Standard library only.
"""

import re
import sys


def esc(text):
    """Roff-escape plain text, then turn `code` into bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]*)`", r"\\fB\1\\fR", text)
    return text


def line(text):
    """A text line: a leading . or ' would be a request."""
    return ("\\&" + text) if text[:1] in (".", "'") else text


def convert(src, version):
    out, para, in_code = [], [], False

    def flush():
        if para:
            out.append(line(esc(" ".join(para))))
            para.clear()

    for raw in src.splitlines():
        if raw.startswith("```"):
            flush()
            if in_code:
                out += [".fi", ".RE"]
            else:
                out += [".RS 2", ".nf"]
            in_code = not in_code
            continue
        if in_code:
            out.append(line(raw.replace("\\", "\\e").replace("-", "\\-")))
            continue
        m = re.match(r"# (\w+)\((\d)\) -- (.*)", raw)
        if m:
            out.append(f'.TH {m[1].upper()} {m[2]} "" "gradc {version}" "User Commands"')
            out += [".SH NAME", f"{m[1]} \\- {esc(m[3])}"]
            continue
        if raw.startswith("## "):
            flush()
            out.append(".SH " + raw[3:])
            continue
        if raw.startswith("### "):
            flush()
            out.append(".SS " + raw[4:])
            continue
        if raw.startswith("- "):
            flush()
            m = re.match(r"- ((?:`-[^`]*`(?:, )?)+): (.*)", raw)
            if m:   # an option (or several): a tagged paragraph
                out += [".TP", line(esc(m[1]))]
                para.append(m[2])
            else:
                out.append(".IP \\(bu 2")
                para.append(raw[2:])
            continue
        if not raw.strip():
            flush()
            if out and out[-1] not in (".PP",) and not out[-1].startswith((".SH", ".SS", ".TH")):
                out.append(".PP")
            continue
        para.append(raw.strip())
    flush()
    return "\n".join(out) + "\n"


def main():
    src, dst, version = sys.argv[1:4]
    with open(src, encoding="utf-8") as f:
        text = convert(f.read(), version)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()

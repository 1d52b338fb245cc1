"""Source rules the suite enforces (run by ctest as `style`):

- no function in engine/, lua/ (its plug-in folders too), sim/ or strategies/ is longer
  than MAX_LINES lines (C: from the line its signature starts on to its closing brace;
  Lua: the line range luac reports for each function, nested ones included in their
  parent);
- the C core (engine/*.c, engine/*.h) never includes a Lua header: only engine/bind/
  talks to Lua;
- every relative link in README.md, docs/*.md, tests/gpu/README.md and the manual test flows names a file that
  exists and, with a #fragment, a heading of that file (GitHub's anchor rules).

Usage: check_source.py SOURCE_DIR [LUAC]"""
import os
import re
import subprocess
import sys

MAX_LINES = 80
C_DIRS = ["engine", "engine/bind", "sim"]
LUA_DIRS = ["lua/knobengine", "strategies"]
SIGNATURE_END = re.compile(r"\)\s*(__attribute__\(\(.*\)\)\s*)?\{\s*$")


def c_functions(path):
    """(name, first line, last line) of each top-level function of a C file."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line and (line[0].isalpha() or line[0] == "_") and "(" in line and not line.startswith(("typedef", "struct")):
            j = i
            while j < len(lines) and not SIGNATURE_END.search(lines[j]) and lines[j].strip() \
                    and not lines[j].rstrip().endswith((";", "}")):
                j += 1
            if j < len(lines) and SIGNATURE_END.search(lines[j]):
                k = j + 1
                while k < len(lines) and not lines[k].startswith("}"):
                    k += 1
                name = re.search(r"(\w+)\s*\(", line)
                out.append((name.group(1) if name else line, i + 1, k + 1))
                i = k
        i += 1
    return out


def lua_functions(path, luac):
    listing = subprocess.run([luac, "-p", "-l", path], capture_output=True, text=True, check=True).stdout
    return [("function", int(a), int(b)) for a, b in re.findall(r"^function <[^:]*:(\d+),(\d+)>", listing, re.M)]


DOC_FILES = ["README.md", "tests/gpu/README.md", "tests/manual/stage2_profile/README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"(?ms)^```.*?^```", "", open(path, encoding="utf-8").read())
    out = set()
    for title in re.findall(r"^#+\s+(.*?)\s*$", text, re.M):
        out.add(re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"))
    return out


def broken_links(root):
    files = DOC_FILES + ["docs/" + f for f in sorted(os.listdir(os.path.join(root, "docs"))) if f.endswith(".md")]
    problems = []
    for doc in files:
        text = re.sub(r"(?ms)^```.*?^```", "", open(os.path.join(root, doc), encoding="utf-8").read())
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, frag = target.partition("#")
            full = os.path.normpath(os.path.join(root, os.path.dirname(doc), path)) if path else os.path.join(root, doc)
            if not os.path.exists(full):
                problems.append("%s: link to %s: no such file" % (doc, target))
            elif frag and full.endswith(".md") and frag not in anchors(full):
                problems.append("%s: link to %s: no such heading" % (doc, target))
    return problems


def main():
    root = sys.argv[1]
    luac = sys.argv[2] if len(sys.argv) > 2 else "luac5.4"
    problems = []
    for d in C_DIRS:
        for f in sorted(os.listdir(os.path.join(root, d))):
            path = os.path.join(root, d, f)
            if not f.endswith((".c", ".h")):
                continue
            if d == "engine" and re.search(r"#\s*include\s*[<\"](lua|lauxlib|lualib|lua-cjson)\.h", open(path).read()):
                problems.append("%s/%s: the C core includes a Lua header (only engine/bind/ may)" % (d, f))
            if f.endswith(".c"):
                for name, a, b in c_functions(path):
                    if b - a + 1 > MAX_LINES:
                        problems.append("%s/%s:%d: %s is %d lines (at most %d)" % (d, f, a, name, b - a + 1, MAX_LINES))
    for d in LUA_DIRS:
        for sub, _, files in sorted(os.walk(os.path.join(root, d))):  # plug-in folders too
            rel = os.path.relpath(sub, root)
            for f in sorted(files):
                if f.endswith(".lua"):
                    for name, a, b in lua_functions(os.path.join(sub, f), luac):
                        if b - a + 1 > MAX_LINES:
                            problems.append("%s/%s:%d: a function of %d lines (at most %d)" % (rel, f, a, b - a + 1, MAX_LINES))
    problems += broken_links(root)
    for p in problems:
        print(p)
    print("%d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

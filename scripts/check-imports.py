#!/usr/bin/env python3
"""Checks that Package.swift tells the truth about the module graph.

For every Swift target in Package.swift, compares the modules its sources `import` with the
dependencies it declares, and fails (exit 1) when
  - a source imports a module the target does not declare (it builds only because the module is
    reachable through some other dependency), or
  - the target declares a dependency none of its sources imports.
Toolchain modules (Foundation, Glibc, Testing, ...) are not dependencies and are ignored.

A dependency that is needed without being imported (e.g. a test that runs another target's binary)
is accepted when Package.swift says so on the line that declares it or the line above:
    // check-imports: unused <Module> (<why>)

Reads only Package.swift and the sources: no Swift toolchain, no dependencies beyond Python 3.
Usage: scripts/check-imports.py [package-directory]   (run by `make test`)
"""

import os
import re
import sys

# Modules that come with the toolchain or the OS, not from a package dependency.
TOOLCHAIN = {
    "Swift", "Foundation", "FoundationEssentials", "FoundationInternationalization", "FoundationNetworking",
    "FoundationXML", "CoreFoundation", "Dispatch", "Darwin", "Glibc", "Musl", "Android", "WinSDK", "ucrt",
    "Synchronization", "Observation", "RegexBuilder", "Distributed", "_Concurrency", "_StringProcessing",
    "_Builtin_intrinsics", "os", "Testing", "XCTest",
}

TARGET_KINDS = ("target", "executableTarget", "testTarget", "systemLibrary")


def strip_comments(text):
    """Package.swift without comments (string contents are kept; the manifest has no '//' in strings
    other than URLs, which are protected)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r'(?m)(^|[^:"])//.*$', r"\1", text)


def balanced(text, start, open_char="(", close_char=")"):
    """The text between the bracket at `start` and its match (exclusive), skipping string literals."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == open_char:
            depth += 1
        elif c == close_char:
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
        i += 1
    raise ValueError("unbalanced brackets in Package.swift")


def split_top_level(text):
    """Splits a list body on commas that are not nested in brackets or strings."""
    items, depth, current, in_string, i = [], 0, "", False, 0
    while i < len(text):
        c = text[i]
        if in_string:
            current += c
            if c == "\\" and i + 1 < len(text):
                current += text[i + 1]
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            current += c
        elif c in "([{":
            depth += 1
            current += c
        elif c in ")]}":
            depth -= 1
            current += c
        elif c == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += c
        i += 1
    if current.strip():
        items.append(current.strip())
    return items


def product_module(expr, variables):
    """The module a dependency expression names: "Name", .target(name:), .product(name:), or a `let`."""
    expr = expr.strip()
    if expr in variables:
        return product_module(variables[expr], variables)
    m = re.fullmatch(r'"([^"]+)"', expr)
    if m:
        return m.group(1)
    m = re.match(r'\.(?:product|target|byName)\(\s*name:\s*"([^"]+)"', expr)
    if m:
        return m.group(1)
    raise ValueError(f"cannot read the dependency {expr!r} in Package.swift")


def parse_manifest(path):
    raw = open(path, encoding="utf-8").read()
    allowed = {}  # (line number) -> set of modules allowed unused on that line or the next
    for number, line in enumerate(raw.splitlines(), 1):
        for m in re.finditer(r"check-imports:\s*unused\s+([A-Za-z_][A-Za-z0-9_]*)", line):
            allowed.setdefault(number, set()).add(m.group(1))
            allowed.setdefault(number + 1, set()).add(m.group(1))
    text = strip_comments(raw)
    variables = {m.group(1): m.group(2).strip() for m in
                 re.finditer(r"(?m)^\s*let\s+(\w+)\s*=\s*Target\.Dependency\.(\w+\(.*\))\s*$", text)}
    variables = {k: "." + v for k, v in variables.items()}
    targets = []
    for m in re.finditer(r"\.(%s)\(" % "|".join(TARGET_KINDS), text):
        # Only targets inside the `targets:` list (products use `targets:` with a different shape).
        body = balanced(text, m.end() - 1)
        name = re.search(r'\bname:\s*"([^"]+)"', body)
        if not name:
            continue
        fields = {}
        for item in split_top_level(body):
            key = re.match(r"(\w+):\s*(.*)", item, flags=re.S)
            if key:
                fields[key.group(1)] = key.group(2)
        if m.group(1) == "target" and "path" not in fields and "dependencies" not in fields:
            continue  # a `.target(name:)` dependency expression, not a declaration
        dependencies = []
        if "dependencies" in fields:
            deps = fields["dependencies"].strip()
            assert deps.startswith("["), f"dependencies of {name.group(1)} are not a list literal"
            dependencies = [product_module(d, variables) for d in split_top_level(deps[1:-1])]
        kind = m.group(1)
        default_root = "Tests" if kind == "testTarget" else "Sources"
        path = re.fullmatch(r'"([^"]+)"', fields["path"].strip()).group(1) if "path" in fields \
            else os.path.join(default_root, name.group(1))
        # Where the target is declared, to find its `check-imports: unused` notes.
        first = raw.count("\n", 0, raw.find(f'name: "{name.group(1)}"')) + 1
        span = range(first, first + body.count("\n") + 2)
        unused_ok = set().union(*(allowed.get(n, set()) for n in span))
        targets.append({"name": name.group(1), "kind": kind, "path": path, "dependencies": dependencies,
                        "unused_ok": unused_ok})
    return targets


IMPORT = re.compile(
    r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|package|internal|fileprivate|private)\s+)?import\s+"
    r"(?:(?:struct|class|enum|protocol|func|var|let|typealias|actor)\s+)?([A-Za-z_][A-Za-z0-9_]*)")


def imports_of(source):
    """Modules a Swift file imports, skipping comments and multi-line string literals (which may hold
    e.g. embedded Python with its own `import` lines)."""
    found, in_string, in_comment = set(), False, False
    for line in source.splitlines():
        if in_comment:
            if "*/" not in line:
                continue
            line = line.split("*/", 1)[1]
            in_comment = False
        if in_string:
            if line.count('"""') % 2 == 1:
                in_string = False
            continue
        m = IMPORT.match(line)
        if m:
            found.add(m.group(1))
        code = line.split("//", 1)[0]
        if code.count('"""') % 2 == 1:
            in_string = True
        if "/*" in code and "*/" not in code.split("/*", 1)[1]:
            in_comment = True
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    targets = parse_manifest(os.path.join(root, "Package.swift"))
    problems = []
    for t in targets:
        if t["kind"] == "systemLibrary":
            continue
        imported = {}
        directory = os.path.join(root, t["path"])
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames[:] = [d for d in dirnames if d not in ("Fixtures", "Resources")]
            for f in filenames:
                if f.endswith(".swift"):
                    file = os.path.join(dirpath, f)
                    for module in imports_of(open(file, encoding="utf-8").read()):
                        imported.setdefault(module, os.path.relpath(file, root))
        if not imported and not any(f.endswith(".swift") for _, _, fs in os.walk(directory) for f in fs):
            continue  # a C target: its headers are its interface
        imported = {m: f for m, f in imported.items() if m not in TOOLCHAIN and m != t["name"]}
        declared = set(t["dependencies"])
        for module in sorted(set(imported) - declared):
            problems.append(f"{t['name']}: imports {module} ({imported[module]}) but does not declare it")
        for module in sorted(declared - set(imported) - t["unused_ok"]):
            problems.append(f"{t['name']}: declares {module} but no source imports it "
                            f"(drop it, or note '// check-imports: unused {module} (why)')")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-imports: {len(problems)} mismatch(es) between Package.swift and the imports", file=sys.stderr)
        return 1
    print(f"check-imports: {len(targets)} targets, declared dependencies match the imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())

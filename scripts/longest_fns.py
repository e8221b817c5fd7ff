#!/usr/bin/env python3
"""Lists the longest non-test functions of Rust files (rustfmt layout: a function ends at the
first line that closes its brace at the indentation of its `fn` line).
    scripts/longest_fns.py [--top N] [--max LINES] PATH...   (files or folders)
With --max, exits 1 when a function is longer than LINES (a structure check for CI). Tests are
excepted: `#[cfg(test)] mod NAME { … }` blocks and files that hold only tests (`tests.rs`,
declared `#[cfg(test)] mod tests;`)."""
import argparse, pathlib, re, sys

FN = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"[^"]*"\s+)?fn\s+(\w+)')


def functions(path):
    lines = path.read_text().splitlines()
    in_tests = None  # indentation of a `mod tests` block being skipped
    i = 0
    while i < len(lines):
        line = lines[i]
        if in_tests is not None:
            if line.startswith(in_tests + '}'):
                in_tests = None
            i += 1
            continue
        if re.match(r'^\s*#\[cfg\(test\)\]', line) and i + 1 < len(lines) and re.match(r'^\s*mod\s+\w+', lines[i + 1]):
            in_tests = re.match(r'^(\s*)', lines[i + 1]).group(1)
            i += 2
            continue
        m = FN.match(line)
        if m and not line.rstrip().endswith(';'):
            indent, name = m.group(1), m.group(8)
            j = i
            while j < len(lines) and not (lines[j].startswith(indent + '}') and len(lines[j].rstrip()) == len(indent) + 1) \
                    and not (j == i and line.rstrip().endswith('}')):
                j += 1
            yield name, i + 1, j - i + 1
            i = j + 1 if j > i else i + 1
            continue
        i += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--top', type=int, default=10)
    ap.add_argument('--max', type=int)
    ap.add_argument('paths', nargs='+')
    a = ap.parse_args()
    found = []
    for p in a.paths:
        p = pathlib.Path(p)
        for f in ([p] if p.is_file() else sorted(p.rglob('*.rs'))):
            if f.name == 'tests.rs':
                continue
            found += [(n, f, line, name) for name, line, n in functions(f)]
    found.sort(reverse=True)
    for n, f, line, name in found[:a.top]:
        print(f'{n:5}  {f}:{line}  {name}')
    if a.max is not None:
        over = [x for x in found if x[0] > a.max]
        if over:
            print(f'{len(over)} function(s) longer than {a.max} lines', file=sys.stderr)
            sys.exit(1)


if __name__ == '__main__':
    main()

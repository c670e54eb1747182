#!/usr/bin/env python3
"""Sorts ThreadSanitizer reports (TSAN_OPTIONS=log_path=DIR/report) into races to look at and the known false
positives of Swift's `Synchronization.Mutex` on Linux.

`Mutex` locks with atomics and futex calls inside the (uninstrumented) standard library, so ThreadSanitizer sees
no happens-before edge between two `withLock` bodies and reports every pair of them as a race (a 10-line
program with 8 threads appending under one `Mutex` reports 9). A report whose two accesses both sit inside a
`withLock` (one of the first four frames of each stack is on a source line that calls `withLock`) is counted
as such; every other report is printed, grouped by the source lines of its two accesses.

    scripts/tsan-triage.py DIR [SOURCE_ROOT]
"""
import collections, os, re, sys

directory = sys.argv[1]
frame = re.compile(r"^\s+#(\d+) (\S+) (/\S+?\.swift):(\d+)(?::\d+)?")
lines_of = {}

def source_line(path, number):
    if path not in lines_of:
        try:
            lines_of[path] = open(path, encoding="utf-8", errors="replace").read().split("\n")
        except OSError:
            lines_of[path] = []
    lines = lines_of[path]
    return lines[number - 1] if 0 < number <= len(lines) else ""

def stacks(report):
    """The first two stacks of a report (the two accesses): lists of (path, line)."""
    result, current = [], None
    for line in report.split("\n"):
        if re.match(r"^  (\S.*) (access|read|write|atomic)", line) or re.match(r"^  (Previous|Modifying|Read|Write|Atomic)", line):
            if len(result) == 2:
                break
            current = []
            result.append(current)
        elif re.match(r"^  (Location|Thread|Mutex)", line):
            if len(result) == 2:
                break
            current = None
        elif current is not None:
            m = frame.match(line)
            if m:
                current.append((m.group(3), int(m.group(4))))
    return result

def under_mutex(stack):
    return any("withLock" in source_line(p, n) for p, n in stack[:4])

total = mutex = 0
other = collections.Counter()
for name in sorted(os.listdir(directory)):
    text = open(os.path.join(directory, name), encoding="utf-8", errors="replace").read()
    for report in text.split("WARNING: ThreadSanitizer:")[1:]:
        total += 1
        two = stacks(report)
        if len(two) == 2 and all(two) and all(under_mutex(s) for s in two):
            mutex += 1
            continue
        kind = report.split("\n", 1)[0].strip()
        where = " <-> ".join(f"{os.path.relpath(s[0][0])}:{s[0][1]}" if s else "?" for s in two) or "?"
        other[f"{kind}: {where}"] += 1
print(f"{total} reports; {mutex} between two withLock bodies (Mutex false positives); {total - mutex} others:")
for key, count in other.most_common():
    print(f"{count:6}  {key}")

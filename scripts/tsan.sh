#!/usr/bin/env bash
# Runs the whole test suite under ThreadSanitizer and sorts what it reports (not part of CI: about 15 minutes
# to build and 12 to run on 2 cores).
#
#   scripts/tsan.sh              build (.build-tsan), run every test one at a time, then triage the reports
#   scripts/tsan.sh --triage     only triage the reports of the last run
#
# Tests run serially (--no-parallel): under ThreadSanitizer everything is 5 to 15 times slower, and in parallel
# the timing-bound tests (listener deadlines, retries within 30 s) fail for lack of time, not for a race. Child
# processes (iotd, the crash workers) inherit TSAN_OPTIONS, so they report into the same folder; exitcode=0
# keeps a child that reported from failing its test for that alone.
#
# The triage (scripts/tsan-triage.py) sets aside the known false positives of Swift's Synchronization.Mutex on
# Linux (its lock is invisible to ThreadSanitizer, so any two withLock bodies on two threads are "racing") and
# prints every other report, grouped by the two places that touch the memory.
set -uo pipefail
cd "$(dirname "$0")/.."
reports=.build-tsan/reports
if [ "${1:-}" != --triage ]; then
    swift build --build-tests --sanitize=thread --scratch-path .build-tsan || exit 1
    mkdir -p .build "$reports" && rm -f "$reports"/report.*
    TSAN_OPTIONS="log_path=$PWD/$reports/report halt_on_error=0 exitcode=0" \
        swift test --skip-build --no-parallel --sanitize=thread --scratch-path .build-tsan
    echo "== test run exited $?"
fi
python3 scripts/tsan-triage.py "$reports"

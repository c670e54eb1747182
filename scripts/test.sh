#!/usr/bin/env bash
# Runs every test of the package on a fresh Debian 12 machine as root (or with the packages present).
#
#   ./scripts/test.sh                  install what is missing, build (no warnings allowed), run all tests,
#                                      the example package's tests, and a smoke run of the benchmarks
#   SKIP_INSTALL=1 ./scripts/test.sh   do not touch apt
#
# Real peers (SQLite files, iotd and worker processes killed with SIGKILL, strace, wrk) are started by the
# tests themselves on loopback / in temporary directories and stopped by their PIDs.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

[ "${SKIP_INSTALL:-0}" = 1 ] || install_packages "${APT_PACKAGES[@]}" "${APT_TEST_PACKAGES[@]}"
[ "${SKIP_INSTALL:-0}" = 1 ] || install_pip_packages  # PIP_TEST_PACKAGES in scripts/lib.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== build (debug, all targets incl. tests)"
swift build --build-tests >"$log" 2>&1
status=$?
grep -E 'error:|warning:|Build' "$log" | grep -v '^\[' | sort -u
if [ $status != 0 ]; then
    echo "FAILED: swift build exited $status" >&2
    exit 1
fi
if grep -E '^/.*/(Sources|Tests|Benchmarks|Examples)/.*(warning|error):' "$log" | grep -qv '/.build/'; then
    echo "FAILED: the build has warnings in the project's own code:" >&2
    grep -E '^/.*/(Sources|Tests|Benchmarks|Examples)/.*(warning|error):' "$log" | grep -v '/.build/' | sort -u >&2
    exit 1
fi

# Tests whose subject is timing (a storm of 500 alarms within a second, kill -9 while a publisher sends
# thousands of messages per second, idle and heartbeat timeouts, revocation cutting a session within one
# second, a slow client not delaying a fast one, slow webhooks not stalling async code) run after the others,
# alone, so that the rest of the suite running in parallel on 2 cores does not stretch the seconds they are about.
TIMED='stormOf500|killNineWhileReceiving|slowClient|idleTimeout|heartbeat|idleClose|revocationCutsSession|revocationAndDownlink|slowWebhooksDoNotStall'
# The 1,000 MQTT clients count the test process's threads and push its descriptors past 1024 (where
# libmodbus, which uses select(), cannot connect): they run last, on their own.
ALONE='aThousandClientsOnTwoThreads'
run_tests() {  # run_tests LABEL ARGS…
    echo "== tests ($1)"
    shift
    swift test --skip-build "$@" >"$log" 2>&1
    local status=$?
    grep -vE '^(◇|↳)|Test case .* (started|passed)|^\[' "$log"
    if [ $status != 0 ] || grep -qE '✘' "$log"; then
        echo "FAILED: swift test exited $status" >&2
        exit 1
    fi
}
run_tests "all but the timed ones, in parallel" --skip "$TIMED|$ALONE"
run_tests "timed ones, alone" --filter "$TIMED"
run_tests "1,000 MQTT clients, on their own" --filter "$ALONE"
if pgrep -x iot-js-worker >/dev/null; then
    echo "FAILED: the tests left iot-js-worker processes running: $(pgrep -x iot-js-worker | tr '\n' ' ')" >&2
    exit 1
fi

echo "== Examples/RuleUnitTest (an integrator's package: rule tests with no C library)"
if ! swift test --package-path Examples/RuleUnitTest >"$log" 2>&1; then
    cat "$log"
    echo "FAILED: Examples/RuleUnitTest" >&2
    exit 1
fi
grep -E 'Test run with' "$log"

echo "== examples and benchmark smoke run (debug build; proves they run, not how fast)"
swift run --skip-build CustomTransportExample --seconds 2 || { echo "FAILED: CustomTransportExample" >&2; exit 1; }
swift run --skip-build iot-bench all --smoke || { echo "FAILED: benchmark smoke run" >&2; exit 1; }
echo "== all green"

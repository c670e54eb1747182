#!/usr/bin/env bash
# Runs every test of the package on a fresh Debian 12 machine as root (or with the packages present).
#
#   ./scripts/test.sh            install what is missing, build (no warnings allowed), run all tests,
#                                and a smoke run of the benchmarks
#   SKIP_INSTALL=1 ./scripts/test.sh   do not touch apt
#
# Real peers (SQLite, processes killed with SIGKILL, strace) are started by the tests themselves on
# loopback / in temporary directories and stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pkg-config libsqlite3-dev sqlite3 strace liblua5.4-dev duktape-dev)

install_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing packages: ${missing[*]} (run as root, or install them: apt-get install ${missing[*]})" >&2
            exit 1
        fi
        echo "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

[ "${SKIP_INSTALL:-0}" = 1 ] || install_packages

echo "== build (debug, all targets incl. tests)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift build --build-tests 2>&1 | tee "$log" | grep -E 'error:|warning:|Compiling|Build' | grep -vE '^\[' || true
if grep -E '^/.*/(Sources|Tests|Benchmarks|Examples)/.*(warning|error):' "$log" | grep -v '/.build/' >/dev/null; then
    echo "FAILED: the build has warnings or errors in the project's own code:" >&2
    grep -E '^/.*/(Sources|Tests|Benchmarks|Examples)/.*(warning|error):' "$log" | grep -v '/.build/' | sort -u >&2
    exit 1
fi

echo "== tests"
swift test --skip-build 2>&1 | tee "$log" | grep -vE '^(◇|↳)' | grep -vE 'Test case .* (started|passed)' || true
status=${PIPESTATUS[0]}
if [ "$status" != 0 ] || grep -qE '✘|error:' "$log"; then
    echo "FAILED: swift test exited $status" >&2
    exit 1
fi

if pgrep -x iot-js-worker >/dev/null; then
    echo "FAILED: the tests left iot-js-worker processes running: $(pgrep -x iot-js-worker | tr '\n' ' ')" >&2
    exit 1
fi

echo "== benchmark smoke run (debug build; proves the benchmarks run, not how fast)"
swift run --skip-build iot-bench all --smoke
echo "== all green"

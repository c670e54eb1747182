#!/usr/bin/env bash
# Builds iotd and runs its demo on a fresh Debian 12 machine as root: a tenant, three products and ~50
# simulated devices posting through the real HTTP listener, a live line every second. Ctrl-C drains and stops.
#
#   ./scripts/demo.sh [iotd demo options]     e.g. --devices 100 --http-port 0 --api-port 0
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
[ "${SKIP_INSTALL:-0}" = 1 ] || install_packages "${APT_PACKAGES[@]}"
echo "building iotd (release; the first build takes a few minutes)…"
swift build -c release --product iotd 2>&1 | grep -E 'error|warning: .*/Sources/|Build' || true
exec .build/release/iotd demo "$@"

#!/usr/bin/env bash
# The repository's style, held by `swift format` (bundled with the toolchain) with `.swift-format`.
#
#   scripts/format.sh          lint: print every finding and exit 1 if there is one (what CI runs)
#   scripts/format.sh --fix    rewrite the files in place, then lint what is left
#
# A deliberate exception (a C macro's name, a vendor's JSON key, Lua's `L`) carries a
# `// swift-format-ignore: RuleName` line above it, with the reason on the comment line before.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(Package.swift Sources Tests Benchmarks Fuzz/Targets Fuzz/Entry Examples/CustomTransport Examples/SerialSensor
    Examples/HTTPOnly/Package.swift Examples/HTTPOnly/Sources
    Examples/RuleUnitTest/Package.swift Examples/RuleUnitTest/Sources Examples/RuleUnitTest/Tests
    Examples/ScaleDevice/Package.swift Examples/ScaleDevice/Sources Examples/ScaleDevice/Tests)
if [ "${1:-}" = --fix ]; then
    swift format format --in-place --recursive --parallel "${paths[@]}"
fi
swift format lint --strict --recursive --parallel "${paths[@]}"

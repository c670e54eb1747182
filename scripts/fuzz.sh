#!/usr/bin/env bash
# Fuzzes the package's parsers with libFuzzer and AddressSanitizer (Linux; swiftc's -sanitize=fuzzer,address).
#
#   scripts/fuzz.sh TARGET [RUNS] [libFuzzer args…]   build, then run TARGET for RUNS executions (default
#                                                      10000000) on Fuzz/Corpus/TARGET, then minimize the corpus
#   scripts/fuzz.sh --build                            only build the sanitized libraries and link the fuzzer
#   scripts/fuzz.sh --merge TARGET                     only minimize Fuzz/Corpus/TARGET with what runs found
#   scripts/fuzz.sh --list                             the targets (FuzzTarget's raw values)
#
# TARGET is one of: json senml tcp-framer coap modbus cron template configuration (Fuzz/Targets).
# FUZZ_SKIP_BUILD=1 reuses the fuzzer binary of the last build; FUZZ_LINK_ONLY=1 only links it again.
#
# The package's libraries are built in release with `-sanitize=fuzzer,address` in their own scratch folder
# (.build-fuzz, git-ignored, used by nothing else), then Fuzz/Entry/FuzzEntry.swift, which defines
# LLVMFuzzerTestOneInput, is linked against their objects with swiftc: one binary for every target, which
# IOT_FUZZ_TARGET selects. (Not a SwiftPM product: SwiftPM links an executable with `--defsym main=…_main`,
# which clashes with libFuzzer's own main.)
#
# A run reads the committed corpus (Fuzz/Corpus/TARGET) and writes what it finds to a work corpus in
# .build-fuzz/corpus/TARGET; crash, timeout and out-of-memory inputs go to Fuzz/Crashes/TARGET/ (commit them:
# FuzzReplayTests replays them). Afterwards the two corpora are merged (-merge=1) into a minimal set that
# replaces the committed one, keeping the hand-written seed-* files, at most FUZZ_MAX_FILES (300) files and
# FUZZ_MAX_BYTES (1 MB). SWIFT_BACKTRACE=enable=no: Swift's crash handler would otherwise report a false ASan
# error and can hang. Leak detection is off (a reachable runtime cache is not a crash).
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH=.build-fuzz
BIN=$SCRATCH/release
FUZZER=$SCRATCH/iot-fuzz
TARGETS="json senml tcp-framer coap modbus cron template configuration"
MAX_FILES=${FUZZ_MAX_FILES:-300}
MAX_BYTES=${FUZZ_MAX_BYTES:-1000000}

build() {
    if [ "${FUZZ_LINK_ONLY:-0}" != 1 ]; then
        echo "== building the libraries (release, -sanitize=fuzzer,address) in $SCRATCH" >&2
        nice -n 10 swift build -c release --scratch-path "$SCRATCH" \
            -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --target IoTFuzzTargets >&2
    fi
    echo "== linking $FUZZER" >&2
    # A source file moved to another target or deleted leaves its object behind in the scratch folder, and the
    # link below takes every object: keep, in each Swift target's folder, only the objects its
    # output-file-map.json names (the module split of session 10 left IoTProtocols' old objects there).
    python3 - "$BIN" <<'PY'
import glob, json, os, sys
for folder in glob.glob(os.path.join(sys.argv[1], "*.build")):
    listed = os.path.join(folder, "output-file-map.json")
    if not os.path.exists(listed):
        continue  # a C target: its objects are its sources'
    keep = {os.path.realpath(v["object"]) for v in json.load(open(listed)).values() if "object" in v}
    for obj in glob.glob(os.path.join(folder, "*.o")):
        if os.path.realpath(obj) not in keep:
            os.remove(obj)
PY
    # Every object of the build (only IoTFuzzTargets and its dependencies are built here), and the module maps
    # and header paths of its C modules, which the Swift modules refer to.
    local objects=() maps=() f
    while IFS= read -r f; do objects+=("$f"); done < <(find "$BIN/" -path '*.build/*' -name '*.o' | sort)
    while IFS= read -r f; do maps+=(-Xcc "-fmodule-map-file=$f"); done < <(
        find "$BIN/" -path '*.build/module.modulemap'
        find Sources -name 'module.modulemap'
        find "$SCRATCH/checkouts" -path '*/Sources/*' -name 'module.modulemap' ! -path '*/Benchmarks/*' ! -path '*Tests*')
    for f in $(pkg-config --cflags-only-I libmodbus libcoap-3-openssl libmosquitto libcurl); do maps+=(-Xcc "$f"); done
    nice -n 10 swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name IoTFuzzEntry \
        -I "$BIN/Modules" "${maps[@]}" Fuzz/Entry/FuzzEntry.swift "${objects[@]}" -o "$FUZZER" 2>&1 \
        | { grep -v "warning: Cannot export local symbol '__asan" || true; } >&2  # gold, on ASan's local helpers
    [ -x "$FUZZER" ]
}

merge() {  # merge TARGET : minimize the committed corpus with the work corpus
    local target=$1 dir=Fuzz/Corpus/$1 work=$SCRATCH/corpus/$1 merged=$SCRATCH/merge/$1
    rm -rf "$merged" && mkdir -p "$merged" "$work"
    SWIFT_BACKTRACE=enable=no IOT_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 \
        nice -n 10 "$FUZZER" -merge=1 "$merged" "$dir" "$work" 2>"$SCRATCH/merge-$target.log" \
        || { tail -20 "$SCRATCH/merge-$target.log" >&2; return 1; }
    # Keep the seeds; the rest of the committed corpus is what the merge kept (libFuzzer names files by their
    # SHA-1, so a seed the merge kept as well is not stored twice).
    local seeds
    seeds=$(find "$dir" -type f -name 'seed-*' -exec sha1sum {} + | cut -d' ' -f1 | sort -u)
    find "$dir" -type f ! -name 'seed-*' -delete
    local name
    for name in $(ls -S -r "$merged"); do  # smallest first
        grep -qx "$name" <<<"$seeds" && continue
        (( $(find "$dir" -type f | wc -l) >= MAX_FILES )) && break
        (( $(bytes "$dir") + $(stat -c %s "$merged/$name") > MAX_BYTES )) && break
        cp "$merged/$name" "$dir/$name"
    done
    echo "== Fuzz/Corpus/$target: $(find "$dir" -type f | wc -l) files, $(bytes "$dir") bytes" >&2
}

bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

run() {  # run TARGET RUNS [libFuzzer args…]
    local target=$1 runs=$2
    shift 2
    mkdir -p "Fuzz/Corpus/$target" "Fuzz/Crashes/$target" "$SCRATCH/corpus/$target"
    echo "== fuzzing $target for $runs executions" >&2
    local status=0
    SWIFT_BACKTRACE=enable=no IOT_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 \
        nice -n 10 "$FUZZER" -runs="$runs" -timeout=30 -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="Fuzz/Crashes/$target/" "$@" "$SCRATCH/corpus/$target" "Fuzz/Corpus/$target" || status=$?
    merge "$target"
    return $status
}

case "${1:-}" in
    "" | -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    --list) tr ' ' '\n' <<<"$TARGETS"; exit 0 ;;
    --build) build; exit 0 ;;
    --merge) merge "${2:?--merge TARGET}"; exit 0 ;;
esac
target=$1
grep -qw -- "$target" <<<"$TARGETS" || { echo "unknown target '$target'; one of: $TARGETS" >&2; exit 2; }
runs=${2:-10000000}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${FUZZ_SKIP_BUILD:-0}" = 1 ] && [ -x "$FUZZER" ] || build
run "$target" "$runs" "$@"

#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer and AddressSanitizer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Builds `drover-fuzz` with -sanitize=fuzzer,address in .build-fuzz, then runs each target
# (codec, connection, shadow, policy, sigv4, jobs) for the given time on a copy of its seed corpus in
# Fuzz/corpus/TARGET (new inputs that add coverage are kept in .build-fuzz/corpus/TARGET; copy
# the interesting ones into Fuzz/corpus). A crash stops the run: its input is saved under
# Fuzz/crashes/TARGET/, and it should become a named regression in Fuzz/regressions/TARGET/,
# which the unit tests replay (Tests/DroverFuzzTests). Prints one RESULT line per target.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(codec connection shadow policy sigv4 jobs)

scripts/install-build-deps.sh
echo "== building drover-fuzz with libFuzzer and AddressSanitizer (.build-fuzz)"
swift build --product drover-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld >/tmp/drover-fuzz-build.log 2>&1 \
    || { tail -40 /tmp/drover-fuzz-build.log; exit 1; }
BIN="$(swift build --product drover-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld --show-bin-path)/drover-fuzz"

status=0
for target in "${TARGETS[@]}"; do
    work=".build-fuzz/corpus/$target"
    crashes="Fuzz/crashes/$target"
    mkdir -p "$work" "$crashes"
    cp -n "Fuzz/corpus/$target"/* "$work"/ 2>/dev/null || true
    log=".build-fuzz/fuzz-$target.log"
    echo "== $target for ${SECONDS_PER_TARGET}s"
    set +e
    DROVER_FUZZ_TARGET="$target" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" "$BIN" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 -max_len=70000 \
        -artifact_prefix="$crashes/" -print_final_stats=1 "$work" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    found=$(ls "$crashes" 2>/dev/null | wc -l)
    echo "RESULT target=$target seconds=$SECONDS_PER_TARGET runs=$runs cov=$cov corpus=$(ls "$work" | wc -l) crashes=$found exit=$rc"
    if [ "$rc" -ne 0 ]; then
        status=1
        grep -A30 -m1 "ERROR\|Fatal error\|deadly signal" "$log" | head -40 || tail -40 "$log"
    fi
done
exit $status

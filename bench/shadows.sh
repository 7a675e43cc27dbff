#!/usr/bin/env bash
# Shadow figures with a release build: MQTT shadow updates per second (paho clients, 32 in
# flight per device) with durability fsync and normal, and the round trip from a desired change
# over HTTP (boto3 iot-data) to the device's /update/delta. Needs the test venv (scripts/setup-test-env.sh).
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEVICES=${SHADOW_DEVICES:-8}
SECONDS_RUN=${SHADOW_SECONDS:-10}
SAMPLES=${SHADOW_SAMPLES:-200}
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || swift build -c release --product drover
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
for durability in fsync normal; do
    rm -rf "$WORK/data"
    DROVER_STORAGE_DURABILITY=$durability .build/release/drover serve --data-dir "$WORK/data" --mqtt-port 18890 \
        --mqtts-port 0 --http-port 18891 --https-port 0 >"$WORK/drover.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        [ -f "$WORK/data/admin-credentials" ] && (exec 3<>/dev/tcp/127.0.0.1/18891) 2>/dev/null && break
        sleep 0.1
    done
    echo "== durability $durability"
    .venv/bin/python bench/shadow_load.py 18890 18891 "$WORK/data/admin-credentials" "$DEVICES" "$SECONDS_RUN" "$SAMPLES"
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
done

#!/usr/bin/env bash
# Shadow figures with a release build, durability fsync and normal:
#   - MQTT shadow updates per second from bench/shadowload.c (C, one epoll thread, hand-encoded
#     MQTT 3.1.1: not the bottleneck), SHADOW_LOAD_DEVICES devices (default 64) with
#     SHADOW_WINDOW updates in flight each (default 16), for SHADOW_SECONDS (default 10);
#   - the same from paho clients (bench/shadow_load.py, 8 devices, 32 in flight each), the
#     figure this replaced, when SHADOW_PAHO=1;
#   - the round trip from a desired change over HTTP (boto3 iot-data) to the device's
#     /update/delta (SHADOW_SAMPLES, default 200).
# Needs gcc and the test venv (scripts/setup-test-env.sh).
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOAD_DEVICES=${SHADOW_LOAD_DEVICES:-64}
WINDOW=${SHADOW_WINDOW:-16}
SECONDS_RUN=${SHADOW_SECONDS:-10}
SAMPLES=${SHADOW_SAMPLES:-200}
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || swift build -c release --product drover
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
gcc -O2 -o "$WORK/shadowload" bench/shadowload.c
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
    # The things first: shadows exist only for registered things (shadow.require_registered_thing).
    .venv/bin/python bench/shadow_load.py 18890 18891 "$WORK/data/admin-credentials" "$LOAD_DEVICES" 0 0 >/dev/null
    "$WORK/shadowload" --port 18890 --devices "$LOAD_DEVICES" --window "$WINDOW" --seconds "$SECONDS_RUN" --broker-pid "$PID"
    if [ "${SHADOW_PAHO:-0}" = 1 ]; then
        .venv/bin/python bench/shadow_load.py 18890 18891 "$WORK/data/admin-credentials" 8 "$SECONDS_RUN" 0
    fi
    .venv/bin/python bench/shadow_load.py 18890 18891 "$WORK/data/admin-credentials" 1 0 "$SAMPLES"
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
done

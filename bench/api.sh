#!/usr/bin/env bash
# Control-plane throughput: signed AWS IoT API calls against a release build of Drover, with the
# registry's durability at fsync (the default) and at normal. There is no Mosquitto counterpart:
# Mosquitto has no registry or API, so these figures stand alone.
#
# Environment: API_COUNT (requests per operation, default 2000), API_CONCURRENCY (default 16),
# BENCH_SKIP_BUILD=1 to use the binaries already built.
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COUNT=${API_COUNT:-2000}
CONCURRENCY=${API_CONCURRENCY:-16}
PORT=18880
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release --product drover
    swift build -c release --product drover-load
fi
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

for durability in fsync normal; do
    rm -rf "$WORK/data"
    DROVER_STORAGE_DURABILITY=$durability .build/release/drover serve --data-dir "$WORK/data" --mqtt-port 0 \
        --mqtts-port 0 --http-port "$PORT" --https-port 0 >"$WORK/drover-$durability.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do
        [ -f "$WORK/data/admin-credentials" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
    for operation in create-thing create-keys-and-certificate describe-thing; do
        count=$COUNT
        [ "$operation" = create-keys-and-certificate ] && count=$((COUNT / 2))
        echo "== durability $durability: $operation"
        .build/release/drover-load api --endpoint "http://127.0.0.1:$PORT" --credentials "$WORK/data/admin-credentials" \
            --operation "$operation" --count "$count" --concurrency "$CONCURRENCY" 2>&1 | grep -v '^RESULT'
    done
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
done

#!/usr/bin/env bash
# The server's CPU per control-plane call, for A/B comparisons on a noisy machine:
#   bench/api-cpu.sh BIN_DIR OPERATION COUNT [perf]
# starts BIN_DIR/drover serve (durability fsync, a fresh data directory, HTTP on 18900), warms it
# with 500 calls, then runs BIN_DIR/drover-load api OPERATION COUNT (16 in flight) and prints its
# RESULT line, the load client's CPU (user+system seconds) and the server's CPU per call, read
# from /proc/PID/stat around the run. With `perf`, the server is profiled during the run
# (perf record -g, to /tmp/drover-api-cpu.perf). Extra environment passes to the server, e.g.
# DROVER_CA_DEFAULT_KEY_ALGORITHM=EC_prime256v1 for P-256 keys in create-keys-and-certificate.
set -euo pipefail
BIN=$1 OP=$2 COUNT=$3 PERF=${4:-}
WORK=$(mktemp -d)
DROVER_CREDENTIALS_PORT=0 DROVER_STORAGE_DURABILITY=fsync "$BIN/drover" serve --data-dir "$WORK" --mqtt-port 0 \
    --mqtts-port 0 --http-port 18900 --https-port 0 >"$WORK/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 400); do (exec 3<>/dev/tcp/127.0.0.1/18900) 2>/dev/null && break; sleep 0.05; done
load() { "$BIN/drover-load" api --endpoint http://127.0.0.1:18900 --credentials "$WORK/admin-credentials" \
    --operation "$OP" --count "$1" --concurrency 16; }
load 500 >/dev/null 2>&1
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
before=$(ticks)
if [ -n "$PERF" ]; then
    perf record -F 2000 -g -p "$PID" -o /tmp/drover-api-cpu.perf >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 0.3
fi
TIMEFORMAT="client_cpu_s=%U+%S"
{ time load "$COUNT" 2>&1 | grep -E '^RESULT'; } 2>&1
after=$(ticks)
if [ -n "$PERF" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
echo "server_cpu_us_per_call=$(( (after - before) * 1000000 / $(getconf CLK_TCK) / COUNT ))"

#!/usr/bin/env bash
# Fleet configuration figures with a release build (durability fsync): how fast a deployment
# reaches every member's shadow, how fast an update to another version does, and how long the
# status of the whole fleet takes. Mosquitto has nothing comparable, so there is no ratio.
# Needs the test venv (scripts/setup-test-env.sh).
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
THINGS=${CONFIG_THINGS:-5000}
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || swift build -c release --product drover
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
.build/release/drover serve --data-dir "$WORK/data" --mqtt-port 18892 --mqtts-port 0 --http-port 18893 --https-port 0 >"$WORK/drover.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    [ -f "$WORK/data/admin-credentials" ] && (exec 3<>/dev/tcp/127.0.0.1/18893) 2>/dev/null && break
    sleep 0.1
done
.venv/bin/python bench/config_load.py 18893 "$WORK/data/admin-credentials" "$THINGS"

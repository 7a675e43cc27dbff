#!/usr/bin/env bash
# Start-up time with a large store: N QoS 1 messages (default 100 000) queued for an offline persistent
# session, in Drover (SQLite) and in Mosquitto (persistence true), then each broker is stopped and started again
# on the same data and the time until it accepts connections is measured. Drover's own figure ("broker state
# loaded ... seconds=") is read from its log. At the end the subscriber comes back and the messages are counted.
#
# The messages are published by bench/fill.py (QoS 1, 1000 in flight, every PUBACK awaited).
#
# Environment: STARTUP_MESSAGES (default 100000), STARTUP_BROKERS (default "mosquitto drover"),
# BENCH_DROVER (default .build/release/drover). Needs mosquitto and mosquitto-clients.
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
N=${STARTUP_MESSAGES:-100000}
BROKERS=${STARTUP_BROKERS:-mosquitto drover}
DROVER=${BENCH_DROVER:-$ROOT/.build/release/drover}
PORT=18840
WORK=$(mktemp -d)
PID=""
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '==> %s\n' "$*" >&2; }
stop() {
    [ -n "$PID" ] || return 0
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}
trap 'stop; rm -rf "$WORK"' EXIT

accepting() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# start NAME: starts the broker on its data in $WORK/NAME; sets PID, and SECS to the seconds until it accepts.
start() {
    local name=$1 t0 t1
    mkdir -p "$WORK/$name"
    t0=$(date +%s.%N)
    case "$name" in
        mosquitto)
            cat >"$WORK/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $WORK/mosquitto/
user $(id -un)
max_queued_messages $((N * 2))
CONF
            mosquitto -c "$WORK/mosquitto.conf" >>"$WORK/mosquitto.log" 2>&1 &
            ;;
        drover)
            DROVER_LIMITS_MAX_QUEUED_MESSAGES=$((N * 2)) DROVER_STORAGE_DURABILITY=normal \
                "$DROVER" serve --data-dir "$WORK/drover" --mqtt-port "$PORT" --mqtts-port 0 --http-port 0 --https-port 0 \
                >>"$WORK/drover.log" 2>&1 &
            ;;
    esac
    PID=$!
    for _ in $(seq 1 3000); do
        accepting && break
        kill -0 "$PID" 2>/dev/null || { log "$name exited; see its log"; cat "$WORK/$name.log" >&2; exit 1; }
        sleep 0.01
    done
    t1=$(date +%s.%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

for name in $BROKERS; do
    log "$name: filling $N messages for an offline persistent session"
    start "$name"
    mosquitto_sub -h 127.0.0.1 -p "$PORT" -c -i startup-sub -q 1 -t startup/t -E
    t0=$(date +%s.%N)
    python3 bench/fill.py 127.0.0.1 "$PORT" startup/t "$N"
    t1=$(date +%s.%N)
    log "$name: published $N in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; restarting"
    stop
    size=$(du -sh "$WORK/$name" | cut -f1)
    start "$name"
    secs=$SECS
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status" 2>/dev/null) || { log "$name died after start"; tail -5 "$WORK/$name.log" >&2; exit 1; }
    extra=""
    [ "$name" = drover ] && extra=" (log: $(grep 'broker state loaded' "$WORK/drover.log" | grep -o 'messages=.*seconds=[0-9.]*' | tail -n 1))"
    got=$(timeout 120 mosquitto_sub -h 127.0.0.1 -p "$PORT" -c -i startup-sub -q 1 -t startup/t -C "$N" -W 100 | wc -l || true)
    echo "$name: $N stored messages ($size on disk): accepting connections after $secs s, RSS $((rss / 1024)) MB," \
        "then delivered $got of $N$extra"
    stop
done

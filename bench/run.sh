#!/usr/bin/env bash
# Benchmarks Drover against Mosquitto with drover-load, on this machine, over loopback.
#
# Scenarios: fan-in QoS 0, fan-in QoS 1, fan-out QoS 0, latency at 10k msg/s, idle connections (broker memory),
# and durable fan-in: QoS 1 to a persistent-session subscriber with persistence on in both brokers (Mosquitto:
# `persistence true`, autosave_interval at its default; Drover: SQLite, durability normal, and fsync per batch).
# Each broker is started fresh for each scenario and stopped (by its PID) afterwards. Prints a markdown table and
# writes it to bench-results/latest.md; the raw output of every run goes to bench-results/logs/.
#
# Environment:
#   BENCH_DURATION          seconds of load per throughput/latency scenario (default 10)
#   BENCH_IDLE_CONNECTIONS  connections in the idle scenario (default 10000)
#   BENCH_IDLE_HOLD         seconds the idle connections are held (default 5)
#   BENCH_LATENCY_RATE      messages per second in the latency scenario (default 10000)
#   BENCH_BROKERS           brokers to run, of "mosquitto drover" (default both)
#   BENCH_SCENARIOS         scenarios to run, of "fanin-qos0 fanin-qos1 fanout-qos0 latency idle durable-qos1
#                           durable-qos1-fsync" (default all)
#   BENCH_DURABLE_PUBLISHERS publishers in the durable scenarios (default 20)
#   BENCH_SKIP_BUILD=1      use the binaries already built
#   BENCH_DROVER            the drover binary (default .build/release/drover)
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

DURATION=${BENCH_DURATION:-10}
IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-10000}
IDLE_HOLD=${BENCH_IDLE_HOLD:-5}
LATENCY_RATE=${BENCH_LATENCY_RATE:-10000}
BROKERS=${BENCH_BROKERS:-mosquitto drover}
SCENARIOS=${BENCH_SCENARIOS:-fanin-qos0 fanin-qos1 fanout-qos0 latency idle durable-qos1 durable-qos1-fsync}
DURABLE_PUBLISHERS=${BENCH_DURABLE_PUBLISHERS:-20}
MOSQUITTO_PORT=18830
DROVER_PORT=18831
LOAD="$ROOT/.build/release/drover-load"
DROVER=${BENCH_DROVER:-$ROOT/.build/release/drover}
RESULTS="$ROOT/bench-results"
LOGS="$RESULTS/logs"
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# 10k connections need 10k descriptors in the broker and in the load tool; both inherit this limit. Where the hard
# limit cannot be raised (no CAP_SYS_RESOURCE, as in some containers) take the hard limit as it is.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNECTIONS + 100)) ]; then
    log "warning: open-file limit $(ulimit -n) is below $IDLE_CONNECTIONS connections; the idle scenario may fail"
fi

# ---------------------------------------------------------------------------------------------------------------
# Build and install

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building drover-load (release)"
    swift build -c release --product drover-load
    case " $BROKERS " in
        *" drover "*)
            log "building drover (release)"
            swift build -c release --product drover
            ;;
    esac
fi
[ -x "$LOAD" ] || die "$LOAD is missing"
case " $BROKERS " in *" drover "*) [ -x "$DROVER" ] || die "$DROVER is missing" ;; esac

case " $BROKERS " in
    *" mosquitto "*)
        if ! command -v mosquitto >/dev/null 2>&1; then
            log "installing mosquitto"
            for attempt in 1 2 3 4 5 6; do
                if { apt-get update && apt-get install -y mosquitto; } >&2; then break; fi
                [ "$attempt" = 6 ] && die "could not install mosquitto"
                log "apt-get failed (locked?); retrying in 10 s"
                sleep 10
            done
        fi
        MOSQUITTO=$(command -v mosquitto)
        ;;
esac

mkdir -p "$LOGS"
WORK=$(mktemp -d)

# ---------------------------------------------------------------------------------------------------------------
# Brokers

BROKER_PID=""
BROKER_DATA=""
TOOL_PID=""

stop_broker() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$BROKER_PID" 2>/dev/null; then
            log "broker $BROKER_PID did not stop; killing it"
            kill -9 "$BROKER_PID" 2>/dev/null || true
        fi
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=""
    fi
    if [ -n "$BROKER_DATA" ]; then
        rm -rf "$BROKER_DATA"
        BROKER_DATA=""
    fi
}

cleanup() {
    if [ -n "$TOOL_PID" ]; then
        kill "$TOOL_PID" 2>/dev/null || true
        wait "$TOOL_PID" 2>/dev/null || true
    fi
    stop_broker
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_of() {
    case "$1" in
        mosquitto) echo "$MOSQUITTO_PORT" ;;
        drover) echo "$DROVER_PORT" ;;
    esac
}

# Succeeds once 127.0.0.1:$1 accepts TCP connections; fails if the broker exits or 20 s pass.
wait_for_port() {
    local port=$1
    for _ in $(seq 1 200); do
        kill -0 "$BROKER_PID" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# start_broker NAME SCENARIO LOGFILE: starts a fresh broker in the background and sets BROKER_PID.
start_broker() {
    local name=$1 scenario=$2 logfile=$3 port
    port=$(port_of "$name")
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        log "port $port is already in use; is an old broker still running?"
        return 1
    fi
    case "$name" in
        mosquitto)
            {
                echo "listener $MOSQUITTO_PORT 127.0.0.1"
                echo "allow_anonymous true"
                echo "max_queued_messages 1000"
                case "$scenario" in
                    durable-*)
                        BROKER_DATA=$(mktemp -d)
                        echo "persistence true"
                        echo "persistence_location $BROKER_DATA/"
                        # Run as root, Mosquitto switches to user mosquitto, which cannot write here.
                        echo "user $(id -un)"
                        ;;
                    *) echo "persistence false" ;;
                esac
                [ "$scenario" = idle ] && echo "max_connections -1"
            } >"$WORK/mosquitto.conf"
            "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$logfile" 2>&1 &
            BROKER_PID=$!
            ;;
        drover)
            BROKER_DATA=$(mktemp -d)
            local durability=normal
            [ "$scenario" = durable-qos1-fsync ] && durability=fsync
            DROVER_STORAGE_DURABILITY=$durability \
                "$DROVER" serve --data-dir "$BROKER_DATA" --mqtt-port "$DROVER_PORT" --mqtts-port 0 --http-port 0 --https-port 0 \
                >"$logfile" 2>&1 &
            BROKER_PID=$!
            ;;
    esac
    if ! wait_for_port "$port"; then
        log "$name did not start listening on $port; see $logfile"
        stop_broker
        return 1
    fi
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# ---------------------------------------------------------------------------------------------------------------
# Results: RESULT lines are flat JSON objects of numbers and strings.

json_field() {
    printf '%s\n' "$1" | grep -o "\"$2\":[^,}]*" | head -n 1 | cut -d: -f2- | tr -d '"'
}

declare -A CELL VALUE
FAILURES=0

# run_scenario SCENARIO BROKER: runs one scenario against one broker; fills CELL and VALUE.
run_scenario() {
    local scenario=$1 broker=$2 port logfile brokerlog result status=0
    port=$(port_of "$broker")
    logfile="$LOGS/$scenario-$broker.log"
    brokerlog="$LOGS/$scenario-$broker.broker.log"
    CELL[$scenario,$broker]="failed"
    VALUE[$scenario,$broker]=""
    log "$scenario against $broker (port $port)"
    start_broker "$broker" "$scenario" "$brokerlog" || { FAILURES=$((FAILURES + 1)); return 0; }

    local limit=$((DURATION + 120))
    case "$scenario" in
        fanin-qos0)
            timeout "$limit" "$LOAD" fanin --port "$port" --duration "$DURATION" --qos 0 >"$logfile" 2>&1 || status=$?
            ;;
        fanin-qos1)
            timeout "$limit" "$LOAD" fanin --port "$port" --duration "$DURATION" --qos 1 >"$logfile" 2>&1 || status=$?
            ;;
        fanout-qos0)
            timeout "$limit" "$LOAD" fanout --port "$port" --duration "$DURATION" --qos 0 >"$logfile" 2>&1 ||
                status=$?
            ;;
        durable-qos1 | durable-qos1-fsync)
            timeout "$limit" "$LOAD" fanin --port "$port" --duration "$DURATION" --qos 1 --persistent --latency \
                --publishers "$DURABLE_PUBLISHERS" >"$logfile" 2>&1 || status=$?
            ;;
        latency)
            timeout "$limit" "$LOAD" latency --port "$port" --duration "$DURATION" --rate "$LATENCY_RATE" \
                >"$logfile" 2>&1 || status=$?
            ;;
        idle)
            run_idle "$broker" "$port" "$logfile" || status=$?
            ;;
    esac
    sed 's/^/    /' "$logfile" >&2
    kill -0 "$BROKER_PID" 2>/dev/null || log "$broker exited during the run; see $brokerlog"
    stop_broker

    result=$(grep '^RESULT ' "$logfile" | tail -n 1 | cut -c8- || true)
    if [ "$status" != 0 ] || [ -z "$result" ]; then
        log "$scenario against $broker failed (exit $status); see $logfile"
        FAILURES=$((FAILURES + 1))
        # A partial idle result still tells something; the throughput ones do not.
        [ "$scenario" = idle ] && [ -n "${IDLE_BYTES:-}" ] || return 0
    fi

    local rate loss p50 p99
    case "$scenario" in
        fanin-qos0 | fanin-qos1 | fanout-qos0)
            rate=$(json_field "$result" rate)
            loss=$(json_field "$result" loss_pct)
            VALUE[$scenario,$broker]=$rate
            CELL[$scenario,$broker]=$(awk -v r="$rate" -v l="$loss" 'BEGIN { printf "%.0f/s (loss %.1f%%)", r, l }')
            ;;
        durable-qos1 | durable-qos1-fsync)
            rate=$(json_field "$result" rate)
            loss=$(json_field "$result" loss_pct)
            p99=$(json_field "$result" p99_us)
            VALUE[$scenario,$broker]=$rate
            CELL[$scenario,$broker]=$(awk -v r="$rate" -v l="$loss" -v p="$p99" \
                'BEGIN { printf "%.0f/s (loss %.2f%%, p99 %.1f ms)", r, l, p / 1000 }')
            ;;
        latency)
            p50=$(json_field "$result" p50_us)
            p99=$(json_field "$result" p99_us)
            rate=$(json_field "$result" rate)
            VALUE[$scenario,$broker]=$p99
            CELL[$scenario,$broker]=$(awk -v a="$p50" -v b="$p99" -v r="$rate" \
                'BEGIN { printf "p50 %.0f µs, p99 %.0f µs (%.0f/s)", a, b, r }')
            ;;
        idle)
            VALUE[$scenario,$broker]=$IDLE_BYTES
            CELL[$scenario,$broker]="$IDLE_BYTES B/conn ($IDLE_CONNECTED conns)"
            [ "$status" = 0 ] || CELL[$scenario,$broker]="${CELL[$scenario,$broker]}, failed"
            ;;
    esac
}

# run_idle BROKER PORT LOGFILE: holds the connections open while the broker's RSS is read; sets IDLE_BYTES.
run_idle() {
    local broker=$1 port=$2 logfile=$3 before held status=0 connected=""
    IDLE_BYTES=""
    IDLE_CONNECTED=""
    sleep 0.5
    before=$(rss_kb "$BROKER_PID")
    timeout $((IDLE_HOLD + 600)) "$LOAD" idle --port "$port" --connections "$IDLE_CONNECTIONS" --hold "$IDLE_HOLD" \
        >"$logfile" 2>&1 &
    TOOL_PID=$!
    for _ in $(seq 1 6000); do
        connected=$(sed -n 's/^CONNECTED \([0-9]*\)$/\1/p' "$logfile" | head -n 1)
        [ -n "$connected" ] && break
        kill -0 "$TOOL_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$connected" ] && [ "$connected" -gt 0 ]; then
        # Let the broker finish whatever the last CONNACKs left to do, but stay inside the hold.
        sleep "$(awk -v h="$IDLE_HOLD" 'BEGIN { print (h > 2 ? 1 : h / 2) }')"
        held=$(rss_kb "$BROKER_PID")
        IDLE_CONNECTED=$connected
        IDLE_BYTES=$(( (held - before) * 1024 / connected ))
        log "$broker RSS: ${before} kB before, ${held} kB with $connected connections -> $IDLE_BYTES B/connection"
    fi
    wait "$TOOL_PID" || status=$?
    TOOL_PID=""
    return "$status"
}

# ---------------------------------------------------------------------------------------------------------------
# Run

label_of() {
    case "$1" in
        fanin-qos0) echo "fan-in QoS 0 (delivered msg/s)" ;;
        fanin-qos1) echo "fan-in QoS 1 (delivered msg/s)" ;;
        fanout-qos0) echo "fan-out QoS 0 (deliveries/s)" ;;
        latency) echo "latency at ${LATENCY_RATE} msg/s (ratio of p99)" ;;
        idle) echo "idle memory (${IDLE_CONNECTIONS} conns)" ;;
        durable-qos1) echo "durable fan-in QoS 1, persistent sub (Drover: normal)" ;;
        durable-qos1-fsync) echo "durable fan-in QoS 1, persistent sub (Drover: fsync)" ;;
    esac
}

STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
for scenario in $SCENARIOS; do
    for broker in $BROKERS; do
        run_scenario "$scenario" "$broker"
    done
done

ratio() {
    local a=${VALUE[$1,mosquitto]:-} b=${VALUE[$1,drover]:-}
    if [ -z "$a" ] || [ -z "$b" ]; then echo "n/a"; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 == 0) print "n/a"; else printf "%.2f", b / a }'
}

TABLE="$WORK/table.md"
{
    echo "| scenario | Mosquitto | Drover | ratio |"
    echo "| --- | --- | --- | --- |"
    for scenario in $SCENARIOS; do
        printf '| %s | %s | %s | %s |\n' "$(label_of "$scenario")" \
            "${CELL[$scenario,mosquitto]:-not run}" "${CELL[$scenario,drover]:-not run}" "$(ratio "$scenario")"
    done
} >"$TABLE"

{
    echo "# Drover vs Mosquitto"
    echo
    echo "$STARTED on $(uname -srm), $(nproc) CPUs; ${DURATION} s per scenario; mosquitto" \
        "$("${MOSQUITTO:-mosquitto}" -h 2>/dev/null | head -n 1 | awk '{ print $3 }' || true)."
    echo
    cat "$TABLE"
    echo
    echo "Ratio is Drover / Mosquitto: above 1 is better for the throughput rows, worse for latency and memory."
    echo "Broker and load tool share the machine's CPUs. Raw output: bench-results/logs/."
} >"$RESULTS/latest.md"

echo
cat "$TABLE"
echo
echo "Written to bench-results/latest.md"
[ "$FAILURES" = 0 ] || { log "$FAILURES run(s) failed"; exit 1; }

#!/usr/bin/env bash
# Control-plane throughput on each backend, with `drover-load api` (its NIO client, SigV4,
# 16 requests in flight per node), a release build, durability fsync (PostgreSQL with its
# default fsync=on, synchronous_commit=on):
#   - sqlite:   one node on drover.sqlite;
#   - postgres: one node on a private PostgreSQL server (scripts/postgres.sh);
#   - 2 nodes:  two nodes on one PostgreSQL database, each loaded by its own drover-load at
#               once; the figure is the sum of both.
# For each: BENCH_CALLS CreateThing calls, then CreateKeysAndCertificate calls: BENCH_RSA_CALLS
# with the default RSA 2048 keys (bound by the prime search), and on SQLite also BENCH_CALLS
# with ca.default_key_algorithm EC_prime256v1.
#
# Environment: BENCH_CALLS (default 20000), BENCH_RSA_CALLS (default 400), BENCH_PG_CALLS (the
# calls on PostgreSQL, default 4000), BENCH_ROUNDS (SQLite rounds, default 3), BENCH_SKIP_BUILD=1
# to use the binaries already built.
set -euo pipefail
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CALLS=${BENCH_CALLS:-20000}
RSA_CALLS=${BENCH_RSA_CALLS:-400}
PG_CALLS=${BENCH_PG_CALLS:-4000}
ROUNDS=${BENCH_ROUNDS:-3}
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release --product drover
    swift build -c release --product drover-load
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/postgres.sh stop "$PG_DIR" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
# Its own directory: mktemp's are closed to the postgres user that the server runs as.
PG_DIR=$(mktemp -d /tmp/drover-bench-pg.XXXXXX)
PG_URL=$(scripts/postgres.sh start "$PG_DIR")
PG_BASE=${PG_URL%/*}

# serve NAME HTTP_PORT [ENV...]: a node with its own data directory.
serve() {
    local name=$1 port=$2
    shift 2
    mkdir -p "$WORK/$name"
    env "$@" .build/release/drover serve --data-dir "$WORK/$name" --mqtt-port 0 --mqtts-port 0 --http-port "$port" \
        --https-port 0 >>"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "node $name did not start" >&2; tail -20 "$WORK/$name.log" >&2; return 1
}
load() { # load PORT CREDENTIALS OPERATION [COUNT]: prints the RESULT line
    local count=${4:-}
    if [ -z "$count" ]; then
        count=$CALLS
        [ "$3" = create-keys-and-certificate ] && count=$RSA_CALLS
    fi
    .build/release/drover-load api --endpoint "http://127.0.0.1:$1" --credentials "$2" --operation "$3" \
        --count "$count" --concurrency 16 2>&1 | grep '^RESULT' | sed 's/^RESULT //'
}
stop_all() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }

# SQLite: BENCH_ROUNDS rounds (default 3), each on a fresh server and data directory.
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$WORK/sqlite" "$WORK/sqlite-ec"
    serve sqlite 18900 DROVER_STORAGE_DURABILITY=fsync
    for op in create-thing create-keys-and-certificate; do
        echo "RESULT round=$round backend=sqlite nodes=1 operation=$op $(load 18900 "$WORK/sqlite/admin-credentials" $op)"
    done
    stop_all
    serve sqlite-ec 18904 DROVER_STORAGE_DURABILITY=fsync DROVER_CA_DEFAULT_KEY_ALGORITHM=EC_prime256v1
    echo "RESULT round=$round backend=sqlite nodes=1 operation=create-keys-and-certificate key=EC_prime256v1 $(
        load 18904 "$WORK/sqlite-ec/admin-credentials" create-keys-and-certificate "$CALLS")"
    stop_all
done

CALLS=$PG_CALLS
psql "$PG_URL" -qc "CREATE DATABASE bench_one"
serve pg1 18901 DROVER_STORAGE_BACKEND=postgres DROVER_STORAGE_URL="$PG_BASE/bench_one"
for op in create-thing create-keys-and-certificate; do
    echo "RESULT backend=postgres nodes=1 operation=$op $(load 18901 "$WORK/pg1/admin-credentials" $op)"
done
stop_all

psql "$PG_URL" -qc "CREATE DATABASE bench_two"
serve a 18902 DROVER_STORAGE_BACKEND=postgres DROVER_STORAGE_URL="$PG_BASE/bench_two"
mkdir -p "$WORK/b"
cp "$WORK/a/ca.pem" "$WORK/a/ca.key" "$WORK/b/"
serve b 18903 DROVER_STORAGE_BACKEND=postgres DROVER_STORAGE_URL="$PG_BASE/bench_two"
for op in create-thing create-keys-and-certificate; do
    load 18902 "$WORK/a/admin-credentials" $op >"$WORK/a.$op" &
    one=$!
    load 18903 "$WORK/a/admin-credentials" $op >"$WORK/b.$op" &
    two=$!
    wait $one $two
    echo "RESULT backend=postgres nodes=2 operation=$op node_a: $(cat "$WORK/a.$op") node_b: $(cat "$WORK/b.$op")"
done
things=$(psql "$PG_BASE/bench_two" -tAc "SELECT count(*) FROM drover_record WHERE kind = 'thing'")
echo "RESULT two-node database holds $things things (each node made $CALLS, and its own probe)"

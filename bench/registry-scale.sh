#!/usr/bin/env bash
# How the control plane's costs grow with the registry: for each size in SCALE_SIZES, a data
# directory is filled with that many things (each with a certificate, a policy and a group,
# bench/seed_registry.py), then a release server is started on it and measured:
#   - start-up: from exec to the HTTP port answering;
#   - memory: RSS after start-up, and per thing against the empty registry;
#   - CreateThing: `drover-load api`, SCALE_CREATES calls, 16 in flight, durability fsync;
#   - the authorization decision: a real device (its own certificate, thing and a policy with
#     variables) connects over mutual TLS and subscribes, SCALE_CONNECTS times; the median
#     connect + SUBACK time, which includes a full policy evaluation (no cached decision);
#   - listings: SCALE_LIST_PAGES pages of ListCertificates and of ListThings (250 a page, the
#     later ones from a marker), bench/list_probe.py: the median and the slowest page.
#
# Environment: SCALE_SIZES (default "0 100000 1000000"), SCALE_CREATES (4000), SCALE_CONNECTS
# (100), SCALE_LIST_PAGES (10), BENCH_SKIP_BUILD=1 to use the binaries already built, SCALE_BIN
# (a directory holding drover and drover-load; default .build/release), SCALE_SEED_LAYOUT=pem-inline to seed the
# records as a registry from before 2026-12-04 reads them (see bench/seed_registry.py).
set -euo pipefail
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZES=${SCALE_SIZES:-"0 100000 1000000"}
CREATES=${SCALE_CREATES:-4000}
CONNECTS=${SCALE_CONNECTS:-100}
LIST_PAGES=${SCALE_LIST_PAGES:-10}
BIN=${SCALE_BIN:-.build/release}
HTTP=18890 MQTTS=18891
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release --product drover
    swift build -c release --product drover-load
fi
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
serve() {
    "$BIN/drover" serve --data-dir "$WORK/data" --mqtt-port 0 --mqtts-port $MQTTS --http-port $HTTP \
        --https-port 0 >>"$WORK/drover.log" 2>&1 &
    PID=$!
}
ready() {
    for _ in $(seq 1 6000); do
        (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "the server did not start" >&2; tail -20 "$WORK/drover.log" >&2; return 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
base_rss=""
for size in $SIZES; do
    rm -rf "$WORK/data"
    serve; ready; stop                     # the data directory, its CA and admin key
    .venv/bin/python bench/seed_registry.py "$WORK/data" "$size" ${SCALE_SEED_LAYOUT:-} >/dev/null
    start=$(date +%s.%N)
    serve; ready
    startup=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
    sleep 1
    rss=$(rss_kb)
    [ -z "$base_rss" ] && base_rss=$rss
    per_thing=$([ "$size" -gt 0 ] && awk -v r="$rss" -v b="$base_rss" -v n="$size" 'BEGIN {printf "%.0f", (r - b) * 1024 / n}' || echo "-")
    create=$("$BIN/drover-load" api --endpoint "http://127.0.0.1:$HTTP" --credentials "$WORK/data/admin-credentials" \
        --operation create-thing --count "$CREATES" --concurrency 16 2>&1 | grep '^RESULT' | sed 's/^RESULT //')
    connect=$(.venv/bin/python bench/auth_probe.py "$WORK/data" "$HTTP" "$MQTTS" "$CONNECTS")
    list=$(.venv/bin/python bench/list_probe.py "$WORK/data" "$HTTP" "$LIST_PAGES")
    echo "RESULT things=$size startup_s=$startup rss_kb=$rss bytes_per_thing=$per_thing create_thing=$create connect=$connect $list"
    stop
done

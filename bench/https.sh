#!/usr/bin/env bash
# Signed API requests over HTTPS against plain HTTP, on one server, alternately in the same run
# (HTTP, HTTPS, HTTP, ...), with drover-load's NIO client (one kept-alive connection per
# caller). Prints requests per second, latency, and the server's and the client's CPU time per
# request, so that a client-bound run shows as one.
#
# Environment: HTTPS_COUNT (requests per run, default 4000), HTTPS_CONCURRENCY (16),
# HTTPS_ROUNDS (3), HTTPS_PIN=1 to pin the server to core 0 and the client to core 1 (taskset),
# so that neither takes the other's CPU; BENCH_SKIP_BUILD=1 to use the binaries already built.
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COUNT=${HTTPS_COUNT:-4000}
CONCURRENCY=${HTTPS_CONCURRENCY:-16}
ROUNDS=${HTTPS_ROUNDS:-3}
HTTP=18895 HTTPS=18896
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release --product drover
    swift build -c release --product drover-load
fi
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
SERVER_PIN=() CLIENT_PIN=""
if [ "${HTTPS_PIN:-0}" = 1 ]; then SERVER_PIN=(taskset -c 0); CLIENT_PIN="taskset -c 1"; fi
"${SERVER_PIN[@]}" .build/release/drover serve --data-dir "$WORK/data" --mqtt-port 0 --mqtts-port 0 --http-port $HTTP \
    --https-port $HTTPS >"$WORK/drover.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    [ -f "$WORK/data/admin-credentials" ] && (exec 3<>"/dev/tcp/127.0.0.1/$HTTPS") 2>/dev/null && break
    sleep 0.1
done
.venv/bin/python - "$PID" "$WORK" "$HTTP" "$HTTPS" "$COUNT" "$CONCURRENCY" "$ROUNDS" "$CLIENT_PIN" <<'PY'
import json, os, resource, statistics, subprocess, sys
pid, work = sys.argv[1], sys.argv[2]
http, https, count, concurrency, rounds = map(int, sys.argv[3:8])
pin = sys.argv[8].split()
tick = os.sysconf("SC_CLK_TCK")

def server_cpu() -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def run(endpoint: str, operation: str) -> dict:
    before_server, before_client = server_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([*pin, ".build/release/drover-load", "api", "--endpoint", endpoint, "--ca-file", f"{work}/data/ca.pem",
                          "--credentials", f"{work}/data/admin-credentials", "--operation", operation,
                          "--count", str(count), "--concurrency", str(concurrency)],
                         capture_output=True, text=True, check=True)
    after_client = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(next(l for l in out.stdout.splitlines() + out.stderr.splitlines() if l.startswith("RESULT"))[7:])
    result["server_cpu_us"] = (server_cpu() - before_server) / count * 1e6
    result["client_cpu_us"] = ((after_client.ru_utime + after_client.ru_stime)
                               - (before_client.ru_utime + before_client.ru_stime)) / count * 1e6
    return result

for operation in ("describe-thing", "create-thing"):
    results = {"http": [], "https": []}
    for r in range(rounds):
        for name, endpoint in (("http", f"http://127.0.0.1:{http}"), ("https", f"https://localhost:{https}")):
            res = run(endpoint, operation)
            results[name].append(res)
            print(f"{operation} round {r + 1} {name:5}: {res['rate']:8.0f} req/s  p50 {res['p50_ms']:.2f} ms  "
                  f"p99 {res['p99_ms']:.2f} ms  server {res['server_cpu_us']:.0f} us/req  client {res['client_cpu_us']:.0f} us/req")
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("rate", "p99_ms", "server_cpu_us", "client_cpu_us")}
           for k, v in results.items()}
    print(f"RESULT operation={operation} http_rate={med['http']['rate']:.0f} https_rate={med['https']['rate']:.0f} "
          f"ratio={med['https']['rate'] / med['http']['rate']:.2f} "
          f"server_us_http={med['http']['server_cpu_us']:.0f} server_us_https={med['https']['server_cpu_us']:.0f} "
          f"client_us_http={med['http']['client_cpu_us']:.0f} client_us_https={med['https']['client_cpu_us']:.0f}")
PY

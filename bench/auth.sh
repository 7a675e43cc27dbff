#!/usr/bin/env bash
# The cost of authorization on the publish path: QoS 0 fan-in from N devices over mutual TLS,
# each with its own certificate and thing, under a policy with variables (iot:Connect on
# client/${iot:Connection.Thing.ThingName}, iot:Publish on topic/load/*), against N anonymous
# publishers on plain TCP, alternately in the same run (A B A B ...), one subscriber on # over
# TCP. Release build; prints the medians and the ratio mutual-TLS / anonymous.
#
# Environment: AUTH_DEVICES (default 1000), AUTH_ROUNDS (3), AUTH_DURATION (10 s), AUTH_QOS (0),
# BENCH_SKIP_BUILD=1 to use the binaries already built.
set -euo pipefail
# The credentials provider (8444) is not what these measure; keep it from taking a fixed port.
export DROVER_CREDENTIALS_PORT=0
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEVICES=${AUTH_DEVICES:-1000}
ROUNDS=${AUTH_ROUNDS:-3}
DURATION=${AUTH_DURATION:-10}
QOS=${AUTH_QOS:-0}
MQTT=18883 MQTTS=18884 HTTP=18885
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release --product drover
    swift build -c release --product drover-load
fi
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
DROVER_LIMITS_MAX_CONNECTIONS=20000 .build/release/drover serve --data-dir "$WORK/data" --mqtt-port $MQTT \
    --mqtts-port $MQTTS --http-port $HTTP --https-port 0 >"$WORK/drover.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    [ -f "$WORK/data/admin-credentials" ] && (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null && break
    sleep 0.1
done
echo "== provisioning $DEVICES devices (thing, certificate, policy) through the API"
.venv/bin/python - "$WORK" "$HTTP" "$DEVICES" <<'PY'
import configparser, json, sys, boto3
from concurrent.futures import ThreadPoolExecutor
work, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
cred = configparser.ConfigParser(); cred.read(f"{work}/data/admin-credentials")
def client():
    return boto3.client("iot", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=cred["default"]["aws_access_key_id"],
                        aws_secret_access_key=cred["default"]["aws_secret_access_key"])
iot = client()
thing = "${iot:Connection.Thing.ThingName}"
iot.create_policy(policyName="load", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{thing}"},
    {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/load/*"}]}))
import os, shutil
devices = f"{work}/devices"; os.makedirs(devices)
shutil.copy(f"{work}/data/ca.pem", f"{devices}/ca.pem")
def provision(i):
    c = client()
    name = f"load_device_{i}"
    c.create_thing(thingName=name)
    made = c.create_keys_and_certificate(setAsActive=True)
    c.attach_policy(policyName="load", target=made["certificateArn"])
    c.attach_thing_principal(thingName=name, principal=made["certificateArn"])
    open(f"{devices}/{i}.pem", "w").write(made["certificatePem"])
    open(f"{devices}/{i}.key", "w").write(made["keyPair"]["PrivateKey"])
    open(f"{devices}/{i}.id", "w").write(name)
with ThreadPoolExecutor(16) as pool:
    list(pool.map(provision, range(count)))
PY
run() {  # $1: tcp or mtls
    local extra=()
    [ "$1" = mtls ] && extra=(--tls-dir "$WORK/devices" --tls-port $MQTTS)
    .build/release/drover-load fanin --port $MQTT --publishers "$DEVICES" --qos "$QOS" --duration "$DURATION" \
        "${extra[@]}" >"$WORK/load-$1.log" 2>&1 || { tail -20 "$WORK/load-$1.log" >&2; return 1; }
    grep '^RESULT' "$WORK/load-$1.log" | sed -n 's/.*"rate":\([0-9.]*\).*/\1/p'
    grep '^RESULT' "$WORK/load-$1.log" | sed 's/^RESULT /  /' >&2
}
declare -a TCP MTLS
for round in $(seq 1 "$ROUNDS"); do
    TCP+=("$(run tcp)")
    MTLS+=("$(run mtls)")
    echo "round $round: anonymous TCP ${TCP[-1]} msg/s, mutual TLS with policies ${MTLS[-1]} msg/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
tcp=$(median "${TCP[@]}"); mtls=$(median "${MTLS[@]}")
echo "RESULT devices=$DEVICES qos=$QOS rounds=$ROUNDS tcp_rate=$tcp mtls_rate=$mtls ratio=$(awk -v a="$mtls" -v b="$tcp" 'BEGIN {printf "%.2f", a/b}')"

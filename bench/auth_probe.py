"""One real device against a running server (bench/registry-scale.sh): a thing, a certificate
from CreateKeysAndCertificate and the seeded policy (with variables) attached; then COUNT
connects over mutual TLS, each with one SUBSCRIBE, timed to the SUBACK. Prints
`median_ms=... p90_ms=...`.

    python3 bench/auth_probe.py DATA_DIR HTTP_PORT MQTTS_PORT COUNT
"""
import configparser
import json
import ssl
import statistics
import sys
import tempfile
import threading
import time

import boto3
import paho.mqtt.client as mqtt

data, http, mqtts, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cred = configparser.ConfigParser()
cred.read(f"{data}/admin-credentials")
iot = boto3.client("iot", endpoint_url=f"http://127.0.0.1:{http}", region_name="us-east-1",
                   aws_access_key_id=cred["default"]["aws_access_key_id"],
                   aws_secret_access_key=cred["default"]["aws_secret_access_key"])
name = "probe-device"
iot.create_thing(thingName=name)
made = iot.create_keys_and_certificate(setAsActive=True)
iot.attach_thing_principal(thingName=name, principal=made["certificateArn"])
try:
    iot.attach_policy(policyName="seed-device", target=made["certificateArn"])
except iot.exceptions.ResourceNotFoundException:  # the empty registry has no seeded policy
    iot.create_policy(policyName="seed-device", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))
    iot.attach_policy(policyName="seed-device", target=made["certificateArn"])
directory = tempfile.mkdtemp()
open(f"{directory}/c.pem", "w").write(made["certificatePem"])
open(f"{directory}/c.key", "w").write(made["keyPair"]["PrivateKey"])
times = []
for i in range(count):
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    client.tls_set(ca_certs=f"{data}/ca.pem", certfile=f"{directory}/c.pem", keyfile=f"{directory}/c.key",
                   tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.tls_insecure_set(True)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"dt/{name}/x", qos=1)
    granted = []
    client.on_subscribe = lambda c, u, mid, codes, p: (granted.extend(codes), done.set())
    start = time.perf_counter()
    client.connect("127.0.0.1", mqtts)
    client.loop_start()
    ok = done.wait(10)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    if not ok:
        sys.exit("no SUBACK within 10 s")
    if not granted or granted[0].is_failure:
        sys.exit(f"the subscription was refused: {granted}")
    times.append(elapsed * 1000)
times.sort()
print(f"median_ms={statistics.median(times):.2f},p90_ms={times[int(len(times) * 0.9)]:.2f}")

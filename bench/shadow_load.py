"""Shadow benchmark (bench/shadows.sh): MQTT shadow updates per second from paho clients (skipped
when SECONDS is 0; bench/shadowload.c is the load client that is not the bottleneck), and the
round trip of a desired change made over HTTP (boto3 iot-data) to the device's /update/delta.

    shadow_load.py MQTT_PORT HTTP_PORT CREDENTIALS DEVICES SECONDS SAMPLES"""

import json
import statistics
import sys
import threading
import time

import boto3
import paho.mqtt.client as mqtt
from botocore.config import Config
from paho.mqtt.enums import CallbackAPIVersion

port, http_port, credentials = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
devices, seconds, window, samples = int(sys.argv[4]), float(sys.argv[5]), 32, int(sys.argv[6])

key = dict(line.split(" = ", 1) for line in open(credentials).read().splitlines() if " = " in line)
data = boto3.client("iot-data", endpoint_url=f"http://127.0.0.1:{http_port}", region_name="us-east-1",
                    aws_access_key_id=key["aws_access_key_id"], aws_secret_access_key=key["aws_secret_access_key"],
                    config=Config(retries={"max_attempts": 1}))


class Device:
    def __init__(self, name):
        self.name, self.accepted, self.rejected, self.sent = name, 0, 0, 0
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
        self.c.on_message = self.on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        base = f"$aws/things/{name}/shadow"
        self.c.subscribe([(f"{base}/update/accepted", 0), (f"{base}/update/rejected", 0), (f"{base}/update/delta", 0)])
        self.delta_at = None
        self.delta_event = threading.Event()
        self.free = threading.Semaphore(window)

    def on_message(self, client, userdata, msg):
        if msg.topic.endswith("/accepted"):
            self.accepted += 1
            self.free.release()
        elif msg.topic.endswith("/rejected"):
            self.rejected += 1
            self.free.release()
        elif msg.topic.endswith("/delta"):
            self.delta_at = time.monotonic()
            self.delta_event.set()

    def flood(self, until):
        n = 0
        while time.monotonic() < until:
            if not self.free.acquire(timeout=1):
                continue
            n += 1
            self.c.publish(f"$aws/things/{self.name}/shadow/update", json.dumps({"state": {"reported": {"n": n}}}), qos=1)
            self.sent += 1


# Shadows exist only for registered things (shadow.require_registered_thing, the default).
iot = boto3.client("iot", endpoint_url=f"http://127.0.0.1:{http_port}", region_name="us-east-1",
                   aws_access_key_id=key["aws_access_key_id"], aws_secret_access_key=key["aws_secret_access_key"])
for i in range(devices):
    try:
        iot.create_thing(thingName=f"bench_{i}")
    except iot.exceptions.ResourceAlreadyExistsException:
        pass
fleet = [Device(f"bench_{i}") for i in range(devices)]
time.sleep(1)
if seconds > 0:
    t0 = time.monotonic()
    threads = [threading.Thread(target=d.flood, args=(t0 + seconds,)) for d in fleet]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 10
    while sum(d.accepted + d.rejected for d in fleet) < sum(d.sent for d in fleet) and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    accepted = sum(d.accepted for d in fleet)
    print(f"shadow updates over MQTT: {devices} devices, {accepted} accepted, {sum(d.rejected for d in fleet)} rejected "
          f"in {elapsed:.1f} s = {accepted / elapsed:.0f}/s")

if samples > 0:
    device = fleet[0]
    rtts = []
    for i in range(samples):
        device.delta_event.clear()
        start = time.monotonic()
        data.update_thing_shadow(thingName=device.name, payload=json.dumps({"state": {"desired": {"target": i}}}))
        assert device.delta_event.wait(5), "no delta"
        rtts.append((device.delta_at - start) * 1000)
    rtts.sort()
    print(f"desired over HTTP -> /update/delta on the device: {samples} samples, p50 {statistics.median(rtts):.1f} ms, "
          f"p99 {rtts[int(len(rtts) * 0.99) - 1]:.1f} ms")
for d in fleet:
    d.c.loop_stop()
    d.c.disconnect()

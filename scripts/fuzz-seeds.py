#!/usr/bin/env python3
"""Grows the fuzzing seed corpus (Fuzz/corpus/) from real sessions.

A recording TCP proxy sits in front of a running `drover serve`; mosquitto_pub, mosquitto_sub
and paho-mqtt (both protocol versions) talk to Drover through it, and what each client sent is
kept as one seed for the codec and connection targets. Shadow, policy and SigV4 seeds are
written from documents the end-to-end tests use. Run under the project's .venv:

    .venv/bin/python scripts/fuzz-seeds.py --port 1883      # Drover's MQTT port
"""
from __future__ import annotations

import argparse
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "Fuzz" / "corpus"


def save(target: str, data: bytes) -> None:
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


class Recorder:
    """Accepts clients on a local port, forwards them to Drover, and records what they send."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sessions: list[bytearray] = []
        self.server.settimeout(0.2)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            sent = bytearray()
            self.sessions.append(sent)
            threading.Thread(target=self._pipe, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        src.settimeout(10)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self.running = False
        self.server.close()


def run(cmd: list[str], timeout: float = 10) -> None:
    subprocess.run(cmd, timeout=timeout, capture_output=True)


def sessions(port: int) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes

    rec = Recorder(port)
    p = str(rec.port)
    run(["mosquitto_pub", "-p", p, "-t", "seed/a", "-m", "hello", "-q", "1"])
    run(["mosquitto_pub", "-p", p, "-t", "seed/b", "-m", "x" * 300, "-q", "2", "-r", "-V", "mqttv5",
         "-D", "publish", "user-property", "k", "v", "-D", "publish", "message-expiry-interval", "30"])
    run(["mosquitto_pub", "-p", p, "-t", "$aws/things/seed/shadow/update", "-q", "1",
         "-m", json.dumps({"state": {"reported": {"t": 21.5}}, "clientToken": "c1"})])
    run(["mosquitto_sub", "-p", p, "-t", "seed/#", "-t", "$share/g/seed/+", "-q", "2", "-V", "mqttv5", "-W", "1",
         "-c", "-i", "seed-sub", "-x", "60", "--will-topic", "seed/will", "--will-payload", "bye"])
    run(["mosquitto_sub", "-p", p, "-t", "seed/#", "-q", "1", "-W", "1", "-V", "mqttv311"])
    for version in (mqtt.MQTTv5, mqtt.MQTTv311):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"seed-paho-{version}", protocol=version)
        c.will_set("seed/status", "gone", qos=1, retain=False)
        props = None
        if version == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 60
            props.TopicAliasMaximum = 8
        c.connect("127.0.0.1", rec.port, keepalive=30, properties=props) if props else c.connect("127.0.0.1", rec.port, 30)
        c.loop_start()
        time.sleep(0.2)
        c.subscribe([("seed/x", 2), ("seed/y/+", 1)])
        for qos in (0, 1, 2):
            c.publish("seed/x", f"qos{qos}".encode(), qos=qos)
        c.unsubscribe("seed/y/+")
        time.sleep(0.5)
        c.disconnect()
        c.loop_stop()
    time.sleep(0.5)
    rec.stop()
    for sent in rec.sessions:
        if not sent:
            continue
        save("codec", b"\x00" + bytes(sent))
        for chunk in (0, 6, 63):
            save("connection", bytes([chunk]) + bytes(sent))


def documents() -> None:
    for doc in (
        {"state": {"desired": {"color": "red", "level": 5}}, "clientToken": "tok-1"},
        {"state": {"reported": {"a": {"b": {"c": [1, 2, {"d": None}]}}}}, "version": 3},
        {"state": {"desired": {"c": {}}, "reported": None}},
        {"state": None},
        {"state": {"desired": {"x": 1e308, "y": -0.0, "z": "\u00e9\u4e2d"}}},
        {"clientToken": "t", "version": 1},
    ):
        save("shadow", json.dumps(doc).encode())
    save("shadow", b"[" * 70 + b"]" * 70)
    thing = "${iot:Connection.Thing.ThingName}"
    for policy in (
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]},
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{thing}"},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"arn:aws:iot:*:*:topic/things/{thing}/*"},
            {"Effect": "Deny", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/test/nosubscribe"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/a/?/${iot:ClientId}/*"},
        ]},
    ):
        save("policy", json.dumps(policy).encode() + b"\x00things/thing/x")
    # The AWS SigV4 test suite's get-vanilla request, in the target's line format.
    save("sigv4", b"GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
                  b"authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                  b"SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\n\n")
    save("sigv4", b"POST\n/things/a%20b\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiot%2Faws4_request"
                  b"&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00\nhost:h\n\n{\"a\":1}")


def crafted() -> None:
    """Sessions no ordinary client sends: the shapes of the crashes issue 10 reported."""
    sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
    import mqtt_raw as m
    hello = m.connect_packet("crafted", version=5, props=[(m.P_RECEIVE_MAXIMUM, 2), (m.P_TOPIC_ALIAS_MAXIMUM, 4)])
    for body in (
        m.subscribe_packet(1, [("$share/g/" + "a" * 2000, 0x05)]),
        m.publish_packet("t/a", b"x", qos=2, pid=5, props=[(m.P_TOPIC_ALIAS, 1)]) + m.publish_packet("", b"y", qos=1, pid=6, props=[(m.P_TOPIC_ALIAS, 1)])
        + m.ack_packet(m.PUBREL, 5) + m.ack_packet(m.PUBREL, 9),
        m.connect_packet("again", version=5),
        b"".join(m.publish_packet("q2", b"m", qos=2, pid=i) for i in range(1, 12)),
        m.publish_packet("$aws/things/" + "n" * 300 + "/shadow/update", b"{}", qos=1, pid=2),
    ):
        save("codec", b"\x00" + hello + body)
        save("connection", b"\x07" + hello + body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, help="Drover's MQTT port (sessions are recorded when given)")
    args = parser.parse_args()
    documents()
    crafted()
    if args.port:
        sessions(args.port)
    for target in sorted(p.name for p in CORPUS.iterdir()):
        print(target, len(list((CORPUS / target).iterdir())))


if __name__ == "__main__":
    sys.exit(main())

"""MQTT over WebSocket with SigV4, as AWS IoT serves it: the AWS IoT Device SDK v2 connects
with `websockets_with_default_aws_signing` to `wss://HOST/mqtt`, and the access key's policy gives
its iot:Connect, iot:Publish, iot:Subscribe and iot:Receive rights. Unsigned, wrongly signed and
foreign-Origin upgrades are refused."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from awscrt import auth, mqtt
from awsiot import mqtt_connection_builder

import aws
from clients import uid
from conftest import HOST


def key_with_policy(srv, statements) -> tuple[str, str]:
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    status, _, created = aws.signed(srv, "POST", "/drover/access-keys", json.dumps({"name": "ws", "policy": policy}).encode())
    assert status == 200, created
    return created["accessKeyId"], created["secretAccessKey"]


def sdk_connection(srv, key, client_id, **kwargs):
    credentials = auth.AwsCredentialsProvider.new_static(key[0], key[1])
    return mqtt_connection_builder.websockets_with_default_aws_signing(
        endpoint="localhost", port=srv.https_port, region=aws.REGION, credentials_provider=credentials,
        ca_filepath=str(Path(srv.data_dir) / "ca.pem"), client_id=client_id, clean_session=True, keep_alive_secs=30,
        **kwargs)


def test_device_sdk_over_signed_websocket_within_its_key_policy(drover):
    arn = "arn:aws:iot:*:*:"
    key = key_with_policy(drover, [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": arn + "client/ws-*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": arn + "topic/ws/allowed/*"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": arn + "topicfilter/ws/allowed/*"}])
    connection = sdk_connection(drover, key, "ws-" + uid("sdk"))
    connection.connect().result(15)
    try:
        got = []
        done = threading.Event()

        def on_message(topic, payload, **kwargs):
            got.append((topic, payload))
            done.set()

        subscribed, _ = connection.subscribe("ws/allowed/#", mqtt.QoS.AT_LEAST_ONCE, on_message)
        assert subscribed.result(10)["qos"] == mqtt.QoS.AT_LEAST_ONCE
        published, _ = connection.publish("ws/allowed/t", b"inside", mqtt.QoS.AT_LEAST_ONCE)
        published.result(10)
        assert done.wait(10) and got == [("ws/allowed/t", b"inside")]
        # Outside the policy: the subscription is refused (SUBACK 0x80, which the SDK raises).
        refused, _ = connection.subscribe("ws/secret/#", mqtt.QoS.AT_LEAST_ONCE, on_message)
        with pytest.raises(mqtt.SubscribeError):
            refused.result(10)
    finally:
        connection.disconnect().result(10)

    # A client id outside iot:Connect is refused.
    with pytest.raises(Exception):
        sdk_connection(drover, key, "other-" + uid("sdk")).connect().result(15)
    # A wrong secret: the upgrade is refused.
    with pytest.raises(Exception):
        sdk_connection(drover, (key[0], "x" * 40), "ws-" + uid("bad")).connect().result(15)

    # Revoking the key disconnects a connected client, at once.
    interrupted = threading.Event()
    connection = sdk_connection(drover, key, "ws-" + uid("rev"), on_connection_interrupted=lambda *a, **k: interrupted.set())
    connection.connect().result(15)
    status, _, _ = aws.signed(drover, "DELETE", f"/drover/access-keys/{key[0]}")
    assert status == 200
    assert interrupted.wait(10), "the revoked key's connection was not closed"
    try:
        connection.disconnect().result(5)
    except Exception:
        pass


def _upgrade(srv, extra: bytes) -> bytes:
    context = ssl.create_default_context(cafile=str(Path(srv.data_dir) / "ca.pem"))
    with socket.create_connection((HOST, srv.https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Protocol: mqtt\r\n" + extra + b"\r\n")
            s.settimeout(5)
            return s.recv(4096)


def test_upgrades_from_foreign_origins_and_bad_signatures_are_refused(drover):
    # Refused upgrades get 400 from the WebSocket handshake, and no connection.
    answer = _upgrade(drover, b"Origin: https://evil.example\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    bad = b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=DRVRNOSUCHKEY0000000%2F20261202%2Fus-east-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20261202T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
    context = ssl.create_default_context(cafile=str(Path(drover.data_dir) / "ca.pem"))
    with socket.create_connection((HOST, drover.https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /mqtt?" + bad + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
            s.settimeout(5)
            answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    # The same requests without the upgrade are answered with the reason, in the AWS shape.
    context = ssl.create_default_context(cafile=str(Path(drover.data_dir) / "ca.pem"))
    for request, expected in ((b"GET /mqtt?" + bad + b" HTTP/1.1\r\nHost: localhost\r\n", b"x-amzn-ErrorType: Invalid"),
                              (b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n",
                               b"http.allowed_origins")):
        with socket.create_connection((HOST, drover.https_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(request + b"Connection: close\r\n\r\n")
                s.settimeout(5)
                answer = b""
                while chunk := s.recv(4096):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 403") and expected in answer, answer[:300]
    # Without a signature or an Origin, the upgrade happens (MQTT's rules apply then), and so it
    # does from a page of the server itself.
    assert _upgrade(drover, b"").startswith(b"HTTP/1.1 101")
    assert _upgrade(drover, b"Origin: https://localhost\r\n").startswith(b"HTTP/1.1 101")

"""The HTTP edge: HTTPS with the CA's certificate and TLS 1.2 at the least, and the bounds that
keep a slow or malformed client from holding the server: the header deadline (slowloris), the
idle timeout, the connection cap, header and body sizes, and ambiguous framing."""

from __future__ import annotations

import resource
import socket
import subprocess
import ssl
import time
import urllib.request
from pathlib import Path

import boto3
import paho.mqtt.client as mqtt
import pytest
from botocore.config import Config

import aws
from clients import uid
from conftest import HOST

# 2 000 slow connections, and the server started by this test inherits the limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < 8192:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, _hard), _hard))


def ca_file(srv) -> str:
    return str(Path(srv.data_dir) / "ca.pem")


def https_iot(srv):
    key_id, secret = aws.admin_credentials(srv)
    return boto3.client("iot", endpoint_url=f"https://127.0.0.1:{srv.https_port}", region_name=aws.REGION,
                        aws_access_key_id=key_id, aws_secret_access_key=secret, verify=ca_file(srv),
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20))


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def health(srv) -> int:
    with urllib.request.urlopen(f"http://{HOST}:{srv.http_port}/health", timeout=5) as r:
        return r.status


def raw(srv, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection((HOST, srv.http_port), timeout=timeout) as s:
        s.sendall(payload)
        return read_all(s, timeout)


def test_https_with_the_ca_certificate(drover):
    name = uid("tls").replace("-", "_")
    iot = https_iot(drover)
    iot.create_thing(thingName=name)
    assert iot.describe_thing(thingName=name)["thingName"] == name
    # The AWS CLI with --ca-bundle.
    out = aws.aws_cli(drover, "iot", "describe-thing", "--thing-name", name,
                      "--endpoint-url", f"https://127.0.0.1:{drover.https_port}", "--ca-bundle", ca_file(drover))
    assert out.returncode == 0, out.stderr

    # The certificate is the CA's, for the server's names: a client without the CA refuses it.
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection((HOST, drover.https_port), timeout=5) as s:
            ssl.create_default_context().wrap_socket(s, server_hostname="127.0.0.1")
    context = ssl.create_default_context(cafile=ca_file(drover))
    with socket.create_connection((HOST, drover.https_port), timeout=5) as s:
        with context.wrap_socket(s, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert read_all(tls).startswith(b"HTTP/1.1 200")

    # Nothing older than TLS 1.2.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(ca_file(drover))
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection((HOST, drover.https_port), timeout=5) as s:
            old.wrap_socket(s, server_hostname="127.0.0.1")


def test_slowloris_connections_are_closed_by_the_header_deadline(drover_factory):
    srv = drover_factory(DROVER_HTTP_HEADER_TIMEOUT="2")
    sockets = []
    try:
        for _ in range(2000):
            s = socket.create_connection((HOST, srv.http_port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sockets.append(s)
        # Meanwhile a device connects over MQTT and publishes at QoS 1. (mosquitto_pub: paho's
        # select() loop cannot take a socket numbered above 1024, as this one is.)
        pub = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(srv.mqtt_port), "-t", "slow/t", "-m", "x",
                              "-q", "1", "-d"], capture_output=True, text=True, timeout=20)
        assert pub.returncode == 0 and "received PUBACK" in pub.stdout, pub.stdout + pub.stderr
        # By the deadline (2 s, and a second for the sweep), every slow one was closed, with 408.
        deadline = time.monotonic() + 10
        closed = 0
        answers = set()
        for s in sockets:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                data = b""
            closed += 1
            answers.add(data.split(b"\r\n", 1)[0])
        assert closed == 2000, f"only {closed} of 2000 slow connections were closed"
        assert answers <= {b"HTTP/1.1 408 Request Timeout", b""}
    finally:
        for s in sockets:
            s.close()
    assert srv.metric("drover_http_timed_out_connections") >= 2000
    assert health(srv) == 200


def test_idle_timeout_and_the_connection_cap(drover_factory):
    srv = drover_factory(DROVER_HTTP_IDLE_TIMEOUT="2", DROVER_HTTP_MAX_CONNECTIONS="50")
    # An idle kept-alive connection goes after the idle timeout.
    with socket.create_connection((HOST, srv.http_port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        s.settimeout(10)
        assert s.recv(4096) == b""
        assert 1.5 <= time.monotonic() - started <= 6
    # At the cap, new connections are closed at once; the open ones still work.
    held = [socket.create_connection((HOST, srv.http_port), timeout=5) for _ in range(50)]
    try:
        time.sleep(0.3)
        extra = socket.create_connection((HOST, srv.http_port), timeout=5)
        extra.settimeout(3)
        try:
            assert extra.recv(16) == b""
        except ConnectionResetError:
            pass
        extra.close()
        held[0].sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
    time.sleep(0.5)
    assert health(srv) == 200
    assert srv.metric("drover_http_refused_connections") >= 1


def test_websocket_mqtt_outlives_the_http_idle_timeout(drover_factory):
    srv = drover_factory(DROVER_HTTP_IDLE_TIMEOUT="1")
    got = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uid("ws"), transport="websockets",
                         protocol=mqtt.MQTTv311)
    client.ws_set_options(path="/mqtt")
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(HOST, srv.http_port, keepalive=30)
    client.loop_start()
    try:
        client.subscribe("ws/idle", qos=1)
        time.sleep(3)  # three idle timeouts, well within MQTT's keep-alive
        assert client.is_connected()
        client.publish("ws/idle", b"still here", qos=1).wait_for_publish(5)  # raises if it cannot
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [b"still here"]
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.mark.parametrize("head,status", [
    (b"POST /things/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
    (b"POST /things/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", b"400"),
    (b"POST /things/x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", b"400"),
    (b"POST /things/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", b"400"),
    (b"POST /things/x HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello", b"400"),
    (b"POST /things/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", b"413"),
    (b"GET /health HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
])
def test_ambiguous_framing_and_oversized_requests(drover, head, status):
    answer = raw(drover, head)
    assert answer.split(b" ", 2)[1] == status, answer[:200]
    assert b"x-amzn-ErrorType" in answer and b'"message"' in answer
    assert health(drover) == 200


def test_pipelined_requests_with_bodies_still_work(drover):
    answer = raw(drover, b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n"
                         b"POST /health HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                         b"GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", timeout=3)
    assert answer.count(b"HTTP/1.1 ") == 3 and answer.startswith(b"HTTP/1.1 200")
    assert answer.rsplit(b"HTTP/1.1 ", 1)[1].startswith(b"200")


def _https_get(srv, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=ca_file(srv))
    with socket.create_connection((HOST, srv.https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.https_port}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            answer = read_all(s)
    return int(answer.split(b" ", 2)[1]), answer


def test_public_monitoring_can_require_a_signature_or_be_off(drover_factory):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    srv = drover_factory(DROVER_HTTP_PUBLIC_MONITORING="signed")
    assert _https_get(srv, "/metrics")[0] == 403
    assert _https_get(srv, "/health")[0] == 403
    request = AWSRequest(method="GET", url=f"https://127.0.0.1:{srv.https_port}/metrics")
    SigV4Auth(Credentials(*aws.admin_credentials(srv)), "iot", aws.REGION).add_auth(request)
    status, answer = _https_get(srv, "/metrics", dict(request.headers))
    assert status == 200 and b"drover_mqtt" in answer
    # Plain HTTP, for local tools on loopback, stays open.
    assert health(srv) == 200

    off = drover_factory(DROVER_HTTP_PUBLIC_MONITORING="off")
    assert _https_get(off, "/metrics")[0] == 404
    assert _https_get(off, "/health")[0] == 404
    assert health(off) == 200


def test_a_body_sent_a_byte_at_a_time_is_cut_off_by_the_body_deadline(drover_factory):
    srv = drover_factory(DROVER_HTTP_BODY_TIMEOUT="2", DROVER_HTTP_IDLE_TIMEOUT="30")
    with socket.create_connection((HOST, srv.http_port), timeout=10) as s:
        s.sendall(b"POST /things/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n")
        started = time.monotonic()
        answer = b""
        closed = False
        s.settimeout(0.5)
        while time.monotonic() - started < 10 and not closed:  # a byte every half second: never idle
            try:
                s.sendall(b"x")
                chunk = s.recv(4096)
                answer += chunk
                closed = chunk == b""
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        # Unsigned: refused at once, before the body is read; the body still has to arrive in
        # time, or the connection goes.
        assert answer.startswith(b"HTTP/1.1 403") and b"MissingAuthenticationTokenException" in answer
        assert b"HTTP/1.1 408" in answer and b"body did not arrive in time" in answer, answer[-300:]
        assert closed and 1.5 <= time.monotonic() - started <= 5
    assert health(srv) == 200

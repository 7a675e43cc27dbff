"""Connection lifecycle: graceful shutdown, connection limit, client identifiers, keep alive."""

import signal
import subprocess
import time

import pytest

from clients import Paho, uid
from mqtt_raw import CONNACK, PINGRESP, Closed, RawClient, Will, connect_packet, parse_connack


def test_sigterm_sends_server_shutting_down_and_exits_0(drover_factory, clients):
    srv = drover_factory()
    v5 = Paho(srv.mqtt_port)
    v311 = Paho(srv.mqtt_port, version=4)
    clients += [v5, v311]
    v5.connect()
    v311.connect()
    srv.expect_alive = False
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        code = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("server still running 10 s after SIGTERM")
    took = time.monotonic() - t0
    assert code == 0, f"exit code {code} after SIGTERM"
    assert v5.wait_disconnected(2), "v5 client not disconnected on shutdown"
    assert v5.disconnect_rc is not None and v5.disconnect_rc.value == 0x8B, \
        f"expected DISCONNECT 0x8B (Server shutting down), got {v5.disconnect_rc!r}"
    assert v311.wait_disconnected(2), "v3.1.1 client not disconnected on shutdown"
    assert took < 10


def test_max_connections(drover_factory, clients):
    srv = drover_factory(DROVER_LIMITS_MAX_CONNECTIONS=5)
    # Churn first: connections that vanish or never get going must give their slot back.
    for _ in range(10):
        c = RawClient(srv.mqtt_port)
        assert c.connect(uid("churn")).reason == 0
        c.abort()
    for _ in range(5):
        c = RawClient(srv.mqtt_port)
        c.send(b"\x00\x00")
        c.read_until_closed(5)
        c.close()
    time.sleep(0.5)
    five = []
    for _ in range(5):
        c = Paho(srv.mqtt_port)
        clients.append(c)
        c.connect()
        five.append(c)

    for version in (5, 4):
        extra = RawClient(srv.mqtt_port)
        clients.append(extra)
        try:
            extra.send(connect_packet(uid("sixth"), version=version))
            pkts, closed = extra.read_until_closed(5)
        except (ConnectionResetError, BrokenPipeError):
            pkts, closed = [], True
        assert closed, "6th connection left open"
        connacks = [p for p in pkts if p.type == CONNACK]
        if connacks:
            code = parse_connack(connacks[0], v5=version == 5).reason
            expected = 0x97 if version == 5 else 0x03
            assert code == expected, f"6th client (v{version}) CONNACK 0x{code:02x}, expected 0x{expected:02x}"
    for c in five:
        assert c.connected.is_set(), "an admitted client was kicked out"

    five[0].disconnect()
    deadline = time.monotonic() + 5
    while True:
        c = Paho(srv.mqtt_port)
        clients.append(c)
        try:
            c.connect(timeout=3)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert c.connected.is_set()


def test_v5_empty_client_id_gets_assigned_identifier(drover, clients):
    ids = []
    for _ in range(2):
        c = Paho(drover.mqtt_port, client_id="")
        clients.append(c)
        c.connect(clean_start=True)
        assigned = getattr(c.connack_props, "AssignedClientIdentifier", None)
        assert assigned, "no Assigned Client Identifier in CONNACK"
        ids.append(assigned)
    assert ids[0] != ids[1], "two clients were assigned the same identifier"


def test_v311_empty_client_id_clean_session_accepted(drover, clients):
    c = Paho(drover.mqtt_port, client_id="", version=4, clean=True)
    clients.append(c)
    c.connect()
    topic = uid("anon")
    c.subscribe(topic, qos=1)
    c.publish(topic, b"me", qos=1)
    assert [m.payload for m in c.wait_messages(1, 5)] == [b"me"]


def test_v311_empty_client_id_persistent_rejected(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    ack = c.connect("", version=4, clean=False)
    assert ack.reason == 0x02, f"CONNACK return code {ack.reason}, expected 2 (identifier rejected)"
    pkts, closed = c.read_until_closed(5)
    assert closed and pkts == []


def test_keep_alive_timeout_disconnects_and_publishes_will(drover, clients):
    topic = uid("ka-will")
    w = Paho(drover.mqtt_port)
    clients.append(w)
    w.connect()
    w.subscribe(topic, qos=1)

    c = RawClient(drover.mqtt_port)
    clients.append(c)
    ack = c.connect(uid("silent"), version=4, keepalive=1, will=Will(topic, b"timed-out", qos=1))
    assert ack.reason == 0
    t0 = time.monotonic()
    pkts, closed = c.read_until_closed(6)
    took = time.monotonic() - t0
    assert closed, "silent client with keep alive 1 s not disconnected within 6 s"
    assert pkts == [], f"server sent {pkts} to a 3.1.1 client"
    assert 1.4 <= took <= 3.2, f"disconnected after {took:.2f}s, expected ~1.5 s (1.5 x keep alive)"
    assert [m.payload for m in w.wait_messages(1, 3)] == [b"timed-out"]


def test_keep_alive_with_pings_stays_connected(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    assert c.connect(uid("pinger"), version=4, keepalive=1).reason == 0
    for _ in range(8):  # 4 s, much longer than 1.5 x keep alive
        time.sleep(0.5)
        c.send(b"\xc0\x00")
        try:
            assert c.expect(PINGRESP, 2)
        except Closed:
            pytest.fail("client that pings every 0.5 s was disconnected")

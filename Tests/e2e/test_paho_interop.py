"""The Eclipse Paho interoperability suite against Drover, over raw sockets.

From eclipse/paho.mqtt.testing, interoperability/client_test5.py (MQTT 5) and, for the subscribe
failure, interoperability/client_test.py (MQTT 3.1.1). Each test here sends the packets that the
Paho test client sends (same packet ids, topics, options, keep-alive) and asserts what the Paho
test asserts; the Paho client's own implicit checks are kept too (its receiver raises on a PUBREC,
PUBCOMP or PUBACK for an id it has not sent, on an unexpected packet type, and when a PUBREL
cannot be written). Where Paho would wait for ever, the waits here are bounded.

- test_flow_control2: publish Receive Maximum + 1 QoS 2 messages without reading, then answer
  every PUBREC with PUBREL until the server's DISCONNECT: exactly one, reason 147 (0x93).
- test_subscribe_failure: SUBSCRIBE to "test/nosubscribe", which the server refuses (here by an
  AWS IoT policy for anonymous clients): the first SUBACK's first reason code is a failure.
  Paho's MQTT 5 test asserts 0x80 (Unspecified error), the code its own test broker sends.
  Drover sends MQTT 5 clients the specific 0x87 (Not authorized), as AWS IoT does; that one
  assertion is the deliberate difference. MQTT 3.1.1 has only 0x80, and gets it.
- test_server_keep_alive: keep-alive 120 against a server whose limit is 60: CONNACK carries
  Server Keep Alive 60. Drover also says the keep-alive in force in every MQTT 5 CONNACK; keep-alive
  0 gets the server's maximum.
"""

from __future__ import annotations

import json
import os
import struct
import time

import pytest

from clients import uid
from mqtt_raw import (DISCONNECT, P_RECEIVE_MAXIMUM, P_SERVER_KEEP_ALIVE, PUBACK, PUBCOMP, PUBLISH,
                      PUBREC, PUBREL, SUBACK, UNSUBACK, Closed, RawClient, ack_packet, dec_props,
                      disconnect_reason, parse_publish, publish_packet, subscribe_packet)

pytestmark = pytest.mark.skipif(os.environ.get("DROVER_E2E_MOSQUITTO") == "1",
                                reason="Drover-only (configured limits and policies)")

# client_test5.py: topic_prefix + "TopicA" is topics[0].
TOPIC_A = "client_test5/TopicA"
# setData(): nosubscribe_topics = ("test/nosubscribe",)
NOSUBSCRIBE = "test/nosubscribe"
# The Paho client's msgid starts at 1 and is incremented before it is used: its first SUBSCRIBE
# or QoS 1/2 PUBLISH has packet id 2.
FIRST_PACKET_ID = 2
# "serverReceiveMaximum = 2**16-1 # the default", when CONNACK has no Receive Maximum.
DEFAULT_RECEIVE_MAXIMUM = 2**16 - 1
# Drover's defaults (BrokerConfiguration): limits.receive_maximum, limits.max_keep_alive.
DROVER_RECEIVE_MAXIMUM = 100
DROVER_MAX_KEEP_ALIVE = 3600
# What the Paho test broker is configured with (mqtt/brokers/V5/MQTTBrokers.py defaults).
PAHO_BROKER_RECEIVE_MAXIMUM = 2
PAHO_BROKER_SERVER_KEEP_ALIVE = 60

RECEIVE_MAXIMUM_EXCEEDED = 147  # 0x93
SUBACK_FAILURE = 0x80
# MQTT 5: Not authorized; Paho's broker sends 0x80 here (see the module's docstring).
SUBACK_NOT_AUTHORIZED = 0x87


def connect_v5(c: RawClient, client_id: str, keepalive: int = 0, **kw):
    """CONNECT as the Paho client does (clean start, keep-alive 0 unless given). The Paho
    client's connect asserts a CONNACK with reason Success; every MQTT 5 CONNACK from Drover
    carries Server Keep Alive."""
    ack = c.connect(client_id, version=5, clean=True, keepalive=keepalive, **kw)
    assert ack.reason == 0, f"connect was refused: reason 0x{ack.reason:02x} {ack.props}"
    assert ack.prop(P_SERVER_KEEP_ALIVE) is not None, \
        f"MQTT 5 CONNACK without Server Keep Alive (0x13) for keep-alive {keepalive}: {ack.props}"
    return ack


def packet_id(body: bytes) -> int:
    return struct.unpack_from("!H", body, 0)[0]


class PahoReceiver:
    """Receivers.receive of the Paho test client (mqtt/clients/V5/internal.py), over a RawClient:
    what it answers to each packet, what it records, and when it raises."""

    def __init__(self, client: RawClient, v5: bool = True):
        self.c = client
        self.v5 = v5
        self.out_msgs: dict[int, int] = {}  # our QoS 1/2 PUBLISHes not completed: id -> QoS
        self.in_msgs: set[int] = set()  # QoS 2 PUBLISHes received, not released yet
        self.subscribeds: list[tuple[int, list[int]]] = []
        self.disconnects: list[int] = []
        self.pubrels_sent = 0

    def publish(self, topic: str, payload: bytes, qos: int, pid: int) -> None:
        if qos:
            self.out_msgs[pid] = qos
        self.c.send(publish_packet(topic, payload, qos=qos, pid=pid, v5=self.v5))

    def _send(self, data: bytes, what: str) -> None:
        # Paho writes with socket.send outside any try: a failed write is an error of the test.
        try:
            self.c.sock.sendall(data)
        except OSError as e:
            pytest.fail(f"the server closed the connection while the client was sending {what} "
                        f"({e!r}); {self.pubrels_sent} PUBRELs sent, DISCONNECTs read so far: "
                        f"{self.disconnects}")

    def receive(self, timeout: float) -> None:
        """One packet. TimeoutError when none came (Paho returns None on its socket timeout)."""
        try:
            p = self.c.read_packet(timeout)
        except Closed:
            pytest.fail(f"the server closed the connection without a DISCONNECT the client could read; "
                        f"{self.pubrels_sent} PUBRELs sent, DISCONNECTs read: {self.disconnects}")
        if p.type == SUBACK:
            pos = 2
            if self.v5:
                _, pos = dec_props(p.body, pos)
            self.subscribeds.append((packet_id(p.body), list(p.body[pos:])))
        elif p.type == DISCONNECT:
            self.disconnects.append(disconnect_reason(p))
        elif p.type == UNSUBACK:
            pass
        elif p.type == PUBACK:
            pid = packet_id(p.body)
            assert self.out_msgs.get(pid) == 1, f"No QoS 1 with that message id sent ({pid})"
            del self.out_msgs[pid]
        elif p.type == PUBREC:
            pid = packet_id(p.body)
            assert pid in self.out_msgs, f"PUBREC received for unknown msg id {pid}"
            self._send(ack_packet(PUBREL, pid), f"PUBREL {pid}")
            self.pubrels_sent += 1
        elif p.type == PUBREL:
            pid = packet_id(p.body)
            if pid in self.in_msgs:
                self.in_msgs.discard(pid)
                self._send(ack_packet(PUBCOMP, pid), f"PUBCOMP {pid}")
        elif p.type == PUBCOMP:
            pid = packet_id(p.body)
            assert pid in self.out_msgs, f"PUBCOMP received for unknown msg id {pid}"
            del self.out_msgs[pid]
        elif p.type == PUBLISH:
            pub = parse_publish(p, v5=self.v5)
            if pub.qos == 1:
                self._send(ack_packet(PUBACK, pub.pid), f"PUBACK {pub.pid}")
            elif pub.qos == 2:
                self.in_msgs.add(pub.pid)
                self._send(ack_packet(PUBREC, pub.pid), f"PUBREC {pub.pid}")
        else:
            raise AssertionError(f"Unexpected packet {p!r}")


# --------------------------------------------------------------------------
# test_flow_control2
# --------------------------------------------------------------------------

def flow_control2(srv, clients, pause_before_excess: float = 0.0) -> None:
    """client_test5.py test_flow_control2.

    The Paho test client has no background thread here ("no callback means no background
    thread, to control receiving"): it sends all Receive Maximum + 1 QoS 2 PUBLISHes before it
    reads anything, then calls receive until a DISCONNECT has come, answering each PUBREC with
    PUBREL on the way. `pause_before_excess` waits before the PUBLISH that exceeds the Receive
    Maximum, so that the server has sent every PUBREC before its DISCONNECT (the Paho client
    does not read meanwhile either): the client then has Receive Maximum PUBRELs to send
    before it reaches the DISCONNECT.
    """
    c = RawClient(srv.mqtt_port)
    clients.append(c)
    # The test builds CONNECT properties (SessionExpiryInterval 0) but does not pass them.
    ack = connect_v5(c, uid("paho-fc2"), keepalive=0)
    server_receive_maximum = ack.prop(P_RECEIVE_MAXIMUM, DEFAULT_RECEIVE_MAXIMUM)
    assert server_receive_maximum <= 1000, \
        f"Receive Maximum {server_receive_maximum}: too many publishes for a bounded test"

    rx = PahoReceiver(c)
    for i in range(1, server_receive_maximum + 2):
        if pause_before_excess and i == server_receive_maximum + 1:
            time.sleep(pause_before_excess)
        rx.publish(TOPIC_A, f"message {i}".encode(), 2, FIRST_PACKET_ID + i - 1)

    # "should get disconnected..."
    deadline = time.monotonic() + 10
    while rx.disconnects == []:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no DISCONNECT within 10 s after {server_receive_maximum + 1} QoS 2 publishes "
                        f"(Receive Maximum {server_receive_maximum}); {rx.pubrels_sent} PUBRELs sent")
        try:
            rx.receive(min(remaining, 0.5))
        except TimeoutError:
            pass
    assert len(rx.disconnects) == 1, len(rx.disconnects)
    assert rx.disconnects[0] == RECEIVE_MAXIMUM_EXCEEDED, rx.disconnects[0]


def test_flow_control2(drover, clients):
    """As the Paho suite runs it: 101 publishes back to back against the default Receive
    Maximum of 100."""
    flow_control2(drover, clients)


def test_flow_control2_pubrecs_before_disconnect(drover, clients):
    """The same packets, with every PUBREC sent before the DISCONNECT: the client keeps
    sending PUBREL for them after the server has decided to disconnect, and must still read
    the DISCONNECT."""
    flow_control2(drover, clients, pause_before_excess=0.5)


def test_flow_control2_receive_maximum_2(drover_factory, clients):
    """With the Receive Maximum of the Paho test broker (2): 3 publishes."""
    srv = drover_factory(DROVER_LIMITS_RECEIVE_MAXIMUM=PAHO_BROKER_RECEIVE_MAXIMUM)
    flow_control2(srv, clients, pause_before_excess=0.3)


# --------------------------------------------------------------------------
# test_subscribe_failure
# --------------------------------------------------------------------------

# The Paho test broker refuses a subscription to "test/nosubscribe" and nothing else. Here an AWS
# IoT policy for anonymous clients does: everything allowed but iot:Subscribe on that filter.
NOSUBSCRIBE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iot:Subscribe",
         "Resource": "arn:aws:iot:*:*:topicfilter/test/nosubscribe"},
    ],
}


@pytest.fixture
def nosubscribe_server(drover_factory, tmp_path):
    path = tmp_path / "anonymous-policy.json"
    path.write_text(json.dumps(NOSUBSCRIBE_POLICY, indent=2))
    return drover_factory(DROVER_MQTT_ANONYMOUS_POLICY=str(path))


def test_subscribe_failure(nosubscribe_server, clients):
    """client_test5.py test_subscribe_failure: connect, SUBSCRIBE test/nosubscribe with
    SubscribeOptions(2); after a second the first SUBACK's first reason code is a refusal
    (0x87 from Drover, where Paho's own broker sends 0x80)."""
    c = RawClient(nosubscribe_server.mqtt_port)
    clients.append(c)
    connect_v5(c, uid("paho-subfail"), keepalive=0)
    rx = PahoReceiver(c)
    c.send(subscribe_packet(FIRST_PACKET_ID, [(NOSUBSCRIBE, 0x02)]))
    # Paho sleeps 1 s, with its receiver thread reading, then looks at what has come.
    deadline = time.monotonic() + 5
    while not rx.subscribeds and time.monotonic() < deadline:
        try:
            rx.receive(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            pass
    assert rx.subscribeds, "no SUBACK within 5 s"
    code = rx.subscribeds[0][1][0]
    assert code == SUBACK_NOT_AUTHORIZED, f"return code should be 0x87, got 0x{code:02x}: {rx.subscribeds}"


def test_subscribe_failure_v311(nosubscribe_server, clients):
    """client_test.py subscribe_failure_test (MQTT 3.1.1): the SUBACK return code is 0x80.
    (That suite's default filter is "nosubscribe"; the filter is its -n option.)"""
    c = RawClient(nosubscribe_server.mqtt_port)
    clients.append(c)
    ack = c.connect(uid("paho-subfail311"), version=4, clean=True, keepalive=0)
    assert ack.reason == 0, f"connect was refused: return code {ack.reason}"
    codes = c.subscribe([(NOSUBSCRIBE, 2)], pid=FIRST_PACKET_ID, v5=False, timeout=5)
    assert codes[0] == SUBACK_FAILURE, f"return code should be 0x80, got {codes}"


def test_subscribe_failure_setup_refuses_only_nosubscribe(nosubscribe_server, clients):
    """The setup: only test/nosubscribe is refused. The other Paho tests subscribe to
    topics[0] with QoS 2 and get what is published there (test_basic)."""
    c = RawClient(nosubscribe_server.mqtt_port)
    clients.append(c)
    connect_v5(c, uid("paho-basic"), keepalive=0)
    assert c.subscribe([(TOPIC_A, 0x02)], pid=FIRST_PACKET_ID, timeout=5) == [0x02]
    c.send(publish_packet(TOPIC_A, b"qos 1", qos=1, pid=FIRST_PACKET_ID + 1))
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        p = c.read_packet(max(0.01, deadline - time.monotonic()))
        if p.type == PUBLISH:
            pub = parse_publish(p, v5=True)
            got.append(("PUBLISH", pub.payload))
            c.send(ack_packet(PUBACK, pub.pid))
        elif p.type == PUBACK:
            got.append(("PUBACK", packet_id(p.body)))
        else:
            raise AssertionError(f"Unexpected packet {p!r}")
    assert sorted(got) == [("PUBACK", FIRST_PACKET_ID + 1), ("PUBLISH", b"qos 1")], got


# --------------------------------------------------------------------------
# test_server_keep_alive
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keep_alive_60(drover_module_factory):
    """The Paho test broker's serverKeepAlive."""
    return drover_module_factory(DROVER_LIMITS_MAX_KEEP_ALIVE=PAHO_BROKER_SERVER_KEEP_ALIVE)


def test_server_keep_alive(keep_alive_60, clients):
    """client_test5.py test_server_keep_alive: connect with keep-alive 120 and clean start:
    CONNACK has ServerKeepAlive, and it is 60."""
    c = RawClient(keep_alive_60.mqtt_port)
    clients.append(c)
    ack = connect_v5(c, uid("paho-ska"), keepalive=120)
    assert ack.prop(P_SERVER_KEEP_ALIVE) is not None
    assert ack.prop(P_SERVER_KEEP_ALIVE) == PAHO_BROKER_SERVER_KEEP_ALIVE, ack.props


def test_server_keep_alive_zero_gets_configured_maximum(keep_alive_60, clients):
    """A client that asks for no keep-alive is told the server's maximum, here 60."""
    c = RawClient(keep_alive_60.mqtt_port)
    clients.append(c)
    ack = connect_v5(c, uid("paho-ska0"), keepalive=0)
    assert ack.prop(P_SERVER_KEEP_ALIVE) == PAHO_BROKER_SERVER_KEEP_ALIVE, ack.props


@pytest.mark.parametrize("keepalive", [0, 1, 60, 120, DROVER_MAX_KEEP_ALIVE, DROVER_MAX_KEEP_ALIVE + 1, 65535])
def test_server_keep_alive_in_every_connack(drover, clients, keepalive):
    """Every MQTT 5 CONNACK says the keep-alive in force: the client's, capped at the maximum
    (3600 by default); keep-alive 0 gets the maximum."""
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    ack = connect_v5(c, uid("paho-ska"), keepalive=keepalive)
    expected = DROVER_MAX_KEEP_ALIVE if keepalive == 0 else min(keepalive, DROVER_MAX_KEEP_ALIVE)
    assert ack.prop(P_SERVER_KEEP_ALIVE) == expected, \
        f"keep-alive {keepalive}: Server Keep Alive {ack.prop(P_SERVER_KEEP_ALIVE)}, expected {expected}"

"""Configured limits: packet size, receive maximum, topic alias maximum, keep alive; flow control."""

import os

import pytest

from clients import Paho, uid
from mqtt_raw import (DISCONNECT, P_MAXIMUM_PACKET_SIZE, P_RECEIVE_MAXIMUM, P_SERVER_KEEP_ALIVE,
                      P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, PINGRESP, PUBACK, PUBCOMP, PUBLISH,
                      PUBREC, PUBREL, RawClient, ack_packet, disconnect_reason,
                      parse_publish, publish_packet)

LIMITS = dict(
    DROVER_LIMITS_MAX_PACKET_SIZE=1024,
    DROVER_LIMITS_RECEIVE_MAXIMUM=5,
    DROVER_LIMITS_TOPIC_ALIAS_MAXIMUM=7,
    DROVER_LIMITS_MAX_KEEP_ALIVE=10,
)


@pytest.fixture(scope="module")
def limited(drover_module_factory):
    return drover_module_factory(**LIMITS)


def test_connack_advertises_default_limits(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    ack = c.connect(uid("raw"), keepalive=7200)
    assert ack.reason == 0
    assert ack.prop(P_MAXIMUM_PACKET_SIZE) == 1048576
    assert ack.prop(P_RECEIVE_MAXIMUM) == 100
    assert ack.prop(P_TOPIC_ALIAS_MAXIMUM) == 64
    assert ack.prop(P_SERVER_KEEP_ALIVE) == 3600, "keep alive 7200 above the 3600 s maximum not capped"


def test_connack_advertises_configured_limits(limited, clients):
    c = RawClient(limited.mqtt_port)
    clients.append(c)
    ack = c.connect(uid("raw"), keepalive=60)
    assert ack.reason == 0
    assert ack.prop(P_MAXIMUM_PACKET_SIZE) == 1024
    assert ack.prop(P_RECEIVE_MAXIMUM) == 5
    assert ack.prop(P_TOPIC_ALIAS_MAXIMUM) == 7
    assert ack.prop(P_SERVER_KEEP_ALIVE) == 10


def test_paho_sees_configured_limits(limited, clients):
    c = Paho(limited.mqtt_port)
    clients.append(c)
    c.connect(keepalive=60)
    p = c.connack_props
    assert p.MaximumPacketSize == 1024
    assert p.ReceiveMaximum == 5
    assert p.TopicAliasMaximum == 7
    assert p.ServerKeepAlive == 10


def test_v5_packet_too_large_disconnect_0x95(limited, clients):
    c = RawClient(limited.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    big = publish_packet(uid("big"), b"x" * 2000, qos=0)
    assert len(big) > 2000
    c.try_send(big)
    pkts, closed = c.read_until_closed(5)
    assert pkts and pkts[0].type == DISCONNECT, f"no DISCONNECT for an oversized packet: {pkts}"
    assert disconnect_reason(pkts[0]) == 0x95
    assert closed


def test_v311_packet_too_large_closed(limited, clients):
    c = RawClient(limited.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw"), version=4).reason == 0
    c.try_send(publish_packet(uid("big"), b"x" * 2000, qos=0, v5=False))
    pkts, closed = c.read_until_closed(5)
    assert closed and pkts == []


def test_packet_just_below_limit_is_accepted(limited, clients):
    c = RawClient(limited.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    topic = uid("fits")
    pkt = publish_packet(topic, b"", qos=1, pid=1)
    pkt = publish_packet(topic, b"y" * (1024 - len(pkt) - 1), qos=1, pid=1)  # -1: length byte grows
    assert len(pkt) <= 1024
    c.send(pkt)
    assert c.expect(PUBACK, 5).body[:2] == b"\x00\x01"


def test_configured_topic_alias_maximum_enforced(limited, clients):
    ok = RawClient(limited.mqtt_port)
    clients.append(ok)
    assert ok.connect(uid("raw")).reason == 0
    ok.send(publish_packet(uid("a"), b"x", qos=1, pid=3, props=[(P_TOPIC_ALIAS, 7)]))
    assert ok.expect(PUBACK, 5).body[:2] == b"\x00\x03"

    bad = RawClient(limited.mqtt_port)
    clients.append(bad)
    assert bad.connect(uid("raw")).reason == 0
    bad.send(publish_packet(uid("a"), b"x", qos=1, pid=3, props=[(P_TOPIC_ALIAS, 8)]))
    pkts, closed = bad.read_until_closed(5)
    assert pkts and pkts[0].type == DISCONNECT and disconnect_reason(pkts[0]) == 0x94, pkts
    assert closed


def test_receive_maximum_exceeded_disconnect_0x93(limited, clients):
    c = RawClient(limited.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    topic = uid("rm")
    # 6 QoS 2 publishes, never released: one more than the Receive Maximum of 5.
    c.send(b"".join(publish_packet(topic, b"x", qos=2, pid=i) for i in range(1, 7)))
    pkts, closed = c.read_until_closed(5)
    discs = [p for p in pkts if p.type == DISCONNECT]
    assert discs, f"no DISCONNECT after exceeding Receive Maximum (got {pkts}, closed={closed})"
    assert disconnect_reason(discs[0]) == 0x93
    assert closed
    assert sum(p.type == PUBREC for p in pkts) <= 5


def test_receive_maximum_respected_is_fine(limited, clients):
    c = RawClient(limited.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    topic = uid("rm-ok")
    for batch in range(3):
        pids = range(batch * 5 + 1, batch * 5 + 6)
        c.send(b"".join(publish_packet(topic, b"x", qos=2, pid=i) for i in pids))
        for _ in pids:
            c.expect(PUBREC, 5)
        c.send(b"".join(ack_packet(PUBREL, i) for i in pids))
        for _ in pids:
            c.expect(PUBCOMP, 5)
    c.send(b"\xc0\x00")
    assert c.expect(PINGRESP, 5)


def test_server_respects_client_maximum_packet_size(drover, clients):
    topic = uid("cmps")
    before = drover.metric("drover_mqtt_messages_dropped_total", reason="packet_too_large") \
        if not _mosquitto() else 0
    sub = RawClient(drover.mqtt_port)
    clients.append(sub)
    assert sub.connect(uid("raw"), props=[(P_MAXIMUM_PACKET_SIZE, 256)]).reason == 0
    sub.subscribe([(topic, 0)])
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"L" * 600, qos=1)
    pub.publish(topic, b"small", qos=1)
    p = parse_publish(sub.expect(PUBLISH, 5), v5=True)
    assert p.payload == b"small", "oversized message sent to a client whose Maximum Packet Size is 256"
    with pytest.raises(TimeoutError):
        sub.read_packet(0.5)
    if not _mosquitto():
        after = drover.metric("drover_mqtt_messages_dropped_total", reason="packet_too_large")
        assert after >= before + 1


def test_server_respects_client_receive_maximum(drover, clients):
    topic = uid("crm")
    sub = RawClient(drover.mqtt_port)
    clients.append(sub)
    assert sub.connect(uid("raw"), props=[(P_RECEIVE_MAXIMUM, 2)]).reason == 0
    sub.subscribe([(topic, 1)])
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    for i in range(6):
        pub.publish(topic, str(i).encode(), qos=1)

    got = []
    for _round in range(3):
        batch = [parse_publish(sub.expect(PUBLISH, 5), v5=True) for _ in range(2)]
        try:
            extra = sub.read_packet(0.7)
            raise AssertionError(f"server exceeded the client's Receive Maximum 2: {extra!r}")
        except TimeoutError:
            pass
        got += batch
        for p in batch:
            assert p.qos == 1
            sub.send(ack_packet(PUBACK, p.pid))
    assert [p.payload for p in got] == [str(i).encode() for i in range(6)]


def _mosquitto():
    return os.environ.get("DROVER_E2E_MOSQUITTO") == "1"


def test_v311_publisher_far_beyond_receive_maximum_is_paced_not_disconnected(limited, clients):
    """MQTT 3.1.1 has no Receive Maximum: a client that keeps 200 QoS 1 and 2 publishes in
    flight (Receive Maximum here is 5) is slowed by reading, never disconnected."""
    c = RawClient(limited.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw311"), version=4).reason == 0
    topic = uid("rm311")
    c.send(b"".join(publish_packet(topic, b"x", qos=1, pid=i, v5=False) for i in range(1, 201)))
    c.send(b"".join(publish_packet(topic, b"y", qos=2, pid=i, v5=False) for i in range(201, 401)))
    acked: set[int] = set()
    received: set[int] = set()
    while len(acked) < 200 or len(received) < 200:
        p = c.read_packet(5)
        pid = int.from_bytes(p.body[:2], "big")
        if p.type == PUBACK:
            acked.add(pid)
        elif p.type == PUBREC:
            received.add(pid)
            c.send(ack_packet(PUBREL, pid))
        elif p.type == PUBCOMP:
            pass
        else:
            raise AssertionError(f"unexpected {p!r}")
    assert acked == set(range(1, 201)) and received == set(range(201, 401))

"""MQTT 5 topic aliases, both directions."""

import time

import pytest

from clients import Paho, PacketTypes, props, uid
from mqtt_raw import (DISCONNECT, P_SESSION_EXPIRY, P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, PUBACK, PUBLISH,
                      RawClient, ack_packet, disconnect_reason, parse_publish, publish_packet)


@pytest.mark.parametrize("sub_version", [5, 4], ids=["sub-v5", "sub-v311"])
def test_publisher_topic_alias_resolved_for_subscribers(drover, clients, sub_version):
    base = uid("alias")
    t1, t2 = f"{base}/one", f"{base}/two"
    sub = Paho(drover.mqtt_port, version=sub_version)
    clients.append(sub)
    sub.connect()
    sub.subscribe(f"{base}/#", qos=1)

    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    assert getattr(pub.connack_props, "TopicAliasMaximum", 0) >= 1, "broker advertises no topic aliases"

    def alias(n):
        return props(PacketTypes.PUBLISH, TopicAlias=n)

    pub.publish(t1, b"0", qos=1, properties=alias(1))
    for i in range(1, 5):
        pub.publish("", str(i).encode(), qos=1, properties=alias(1))
    pub.publish(t2, b"5", qos=1, properties=alias(1))  # re-map alias 1
    pub.publish("", b"6", qos=1, properties=alias(1))
    pub.publish(t1, b"7", qos=1)  # plain topic still fine

    sub.wait_messages(8, timeout=5)
    time.sleep(0.3)
    got = [(m.topic, m.payload) for m in sub.received()]
    assert got == [(t1, b"0"), (t1, b"1"), (t1, b"2"), (t1, b"3"), (t1, b"4"),
                   (t2, b"5"), (t2, b"6"), (t1, b"7")]
    assert pub.connected.is_set()


def test_subscriber_without_alias_maximum_gets_no_aliases(drover, clients):
    base = uid("noalias")
    sub = RawClient(drover.mqtt_port)
    clients.append(sub)
    assert sub.connect(uid("raw")).reason == 0  # no Topic Alias Maximum: it is 0
    sub.subscribe([(f"{base}/#", 0)])
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    for i in range(5):
        pub.publish(f"{base}/x", str(i).encode(), qos=1)
    for i in range(5):
        p = parse_publish(sub.expect(PUBLISH, 5), v5=True)
        assert p.topic.decode() == f"{base}/x"
        assert p.prop(P_TOPIC_ALIAS) is None, "server sent a Topic Alias to a client that allows none"


def test_subscriber_with_topic_alias_maximum_5(drover, clients):
    """A subscriber allowing 5 aliases: whatever the broker does, every message resolves to its topic."""
    base = uid("alias-sub")
    topics = [f"{base}/t{i}" for i in range(7)]  # more topics than aliases
    sub = RawClient(drover.mqtt_port)
    clients.append(sub)
    assert sub.connect(uid("raw"), props=[(P_TOPIC_ALIAS_MAXIMUM, 5)]).reason == 0
    sub.subscribe([(f"{base}/#", 1)])
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    sent = [(topics[i % len(topics)], str(i).encode()) for i in range(30)]
    for t, p in sent:
        pub.publish(t, p, qos=1)

    aliases: dict[int, str] = {}
    got = []
    for _ in sent:
        p = parse_publish(sub.expect(PUBLISH, 5), v5=True)
        if p.qos:
            sub.send(ack_packet(PUBACK, p.pid))
        topic = p.topic.decode()
        a = p.prop(P_TOPIC_ALIAS)
        if a is not None:
            assert 1 <= a <= 5, f"server used topic alias {a} above the client's maximum 5"
            if topic:
                aliases[a] = topic
            else:
                assert a in aliases, f"server used alias {a} before defining it"
                topic = aliases[a]
        else:
            assert topic, "empty topic without alias"
        got.append((topic, p.payload))
    assert got == sent


def _expect_disconnect(raw, reasons, timeout=5):
    pkts, closed = raw.read_until_closed(timeout)
    disc = [p for p in pkts if p.type == DISCONNECT]
    assert disc, f"no DISCONNECT from server (closed={closed}, got {pkts})"
    rc = disconnect_reason(disc[0])
    assert rc in reasons, f"DISCONNECT reason 0x{rc:02x}, expected one of {[hex(r) for r in reasons]}"
    assert closed, "server did not close the connection after DISCONNECT"


def test_paho_alias_above_maximum_disconnects_0x94(drover, clients):
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(uid("big-alias"), b"x", qos=1, properties=props(PacketTypes.PUBLISH, TopicAlias=65000),
                wait=False, check=False)
    assert pub.wait_disconnected(5), "broker accepted topic alias 65000"
    assert pub.disconnect_rc.value == 0x94, f"expected 0x94 Topic Alias invalid, got {pub.disconnect_rc!r}"


@pytest.mark.parametrize("alias", [65, 65000])
def test_raw_alias_above_maximum_disconnects_0x94(drover, clients, alias):
    # The default Topic Alias Maximum is 64.
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    c.send(publish_packet(uid("a"), b"x", qos=0, props=[(P_TOPIC_ALIAS, alias)]))
    _expect_disconnect(c, {0x94})


def test_raw_alias_zero_is_an_error(drover, clients):
    # [MQTT-3.3.2-8] forbids alias 0; the spec names no specific code: Protocol Error or Topic Alias invalid.
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    c.send(publish_packet(uid("a"), b"x", qos=0, props=[(P_TOPIC_ALIAS, 0)]))
    _expect_disconnect(c, {0x82, 0x94})


def test_raw_alias_64_is_accepted(drover, clients):
    base = uid("a64")
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    c.send(publish_packet(base, b"x", qos=1, pid=1, props=[(P_TOPIC_ALIAS, 64)]))
    c.send(publish_packet("", b"y", qos=1, pid=2, props=[(P_TOPIC_ALIAS, 64)]))
    assert c.expect(PUBACK, 5).body[:2] == b"\x00\x01"
    assert c.expect(PUBACK, 5).body[:2] == b"\x00\x02"


def test_raw_empty_topic_with_unknown_alias_is_protocol_error(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    c.send(publish_packet("", b"x", qos=0, props=[(P_TOPIC_ALIAS, 9)]))
    _expect_disconnect(c, {0x82, 0x94})


def test_raw_empty_topic_without_alias_is_protocol_error(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    assert c.connect(uid("raw")).reason == 0
    c.send(publish_packet("", b"x", qos=0))
    _expect_disconnect(c, {0x82})


def test_aliases_do_not_survive_a_reconnect(drover, clients):
    """[MQTT-3.3.2-7]: alias mappings belong to one network connection, even when the session resumes."""
    cid, topic = uid("al-re"), uid("alias-re")
    conn = [(P_SESSION_EXPIRY, 60), (P_TOPIC_ALIAS_MAXIMUM, 5)]
    s = RawClient(drover.mqtt_port)
    clients.append(s)
    assert s.connect(cid, props=conn).reason == 0
    s.subscribe([(topic, 1)])
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    for i in range(3):
        pub.publish(topic, str(i).encode(), qos=1)
    for _ in range(3):
        p = parse_publish(s.expect(PUBLISH, 5), v5=True)
        s.send(ack_packet(PUBACK, p.pid))
    s.send(b"\xe0\x00")
    s.read_until_closed(5)

    pub.publish(topic, b"queued", qos=1)
    again = RawClient(drover.mqtt_port)
    clients.append(again)
    ack = again.connect(cid, clean=False, props=conn)
    assert ack.session_present
    pub.publish(topic, b"live", qos=1)
    for expected in (b"queued", b"live"):
        p = parse_publish(again.expect(PUBLISH, 5), v5=True)
        assert p.payload == expected
        if p.topic == b"":
            # Only legal if this connection already defined the alias.
            assert expected == b"live", "first message after reconnect used an alias from the old connection"
        again.send(ack_packet(PUBACK, p.pid))

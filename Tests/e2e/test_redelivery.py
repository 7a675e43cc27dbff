"""Session state across reconnects: redelivery with DUP, QoS 2 duplicate suppression, expiry."""

import os
import time

import pytest

from clients import Paho, PacketTypes, props, uid
from mqtt_raw import (P_SESSION_EXPIRY, PINGRESP, PUBCOMP, PUBLISH, PUBREC, PUBREL, PUBACK,
                      RawClient, ack_packet, parse_publish, publish_packet)


def _session(port, cid, version, clean):
    """A persistent session: v5 Session Expiry 60 s; v3.1.1 always clean session 0 (fresh ids)."""
    c = RawClient(port)
    kw = {"props": [(P_SESSION_EXPIRY, 60)]} if version == 5 else {}
    if version != 5:
        clean = False
    ack = c.connect(cid, version=version, clean=clean, **kw)
    assert ack.reason == 0, ack
    return c, ack


def _publisher(port, clients):
    p = Paho(port)
    clients.append(p)
    p.connect()
    return p


@pytest.mark.parametrize("version", [5, 4], ids=["v5", "v311"])
def test_unacked_qos1_redelivered_with_dup_after_reconnect(drover, clients, version):
    topic, cid = uid("redeliver"), uid("sub")
    v5 = version == 5
    sub, _ = _session(drover.mqtt_port, cid, version, clean=True)
    clients.append(sub)
    sub.subscribe([(topic, 1)], v5=v5)
    _publisher(drover.mqtt_port, clients).publish(topic, b"at-least-once", qos=1)
    first = parse_publish(sub.expect(PUBLISH, 5), v5=v5)
    assert not first.dup
    sub.abort()  # gone without PUBACK

    again, ack = _session(drover.mqtt_port, cid, version, clean=False)
    clients.append(again)
    assert ack.session_present
    p = parse_publish(again.expect(PUBLISH, 5), v5=v5)
    assert (p.payload, p.pid, p.qos) == (b"at-least-once", first.pid, 1), "not resent with the original packet id"
    assert p.dup, "resent PUBLISH must have DUP set"
    again.send(ack_packet(PUBACK, p.pid))
    with pytest.raises(TimeoutError):
        again.read_packet(1.0)


@pytest.mark.parametrize("version", [5, 4], ids=["v5", "v311"])
def test_qos2_pubrel_resent_after_reconnect_not_the_message(drover, clients, version):
    topic, cid = uid("q2state"), uid("sub")
    v5 = version == 5
    sub, _ = _session(drover.mqtt_port, cid, version, clean=True)
    clients.append(sub)
    sub.subscribe([(topic, 2)], v5=v5)
    _publisher(drover.mqtt_port, clients).publish(topic, b"once", qos=2)
    p = parse_publish(sub.expect(PUBLISH, 5), v5=v5)
    sub.send(ack_packet(PUBREC, p.pid))
    rel = sub.expect(PUBREL, 5)
    assert rel.body[:2] == p.pid.to_bytes(2, "big")
    sub.abort()  # gone without PUBCOMP

    again, ack = _session(drover.mqtt_port, cid, version, clean=False)
    clients.append(again)
    assert ack.session_present
    nxt = again.read_packet(5)
    assert nxt.type == PUBREL, f"expected the PUBREL to be resent, got {nxt!r}"
    assert nxt.body[:2] == p.pid.to_bytes(2, "big")
    again.send(ack_packet(PUBCOMP, p.pid))
    with pytest.raises(TimeoutError):
        extra = again.read_packet(1.0)
        raise AssertionError(f"unexpected packet after PUBCOMP: {extra!r}")


def test_inbound_qos2_duplicate_publish_delivered_once(drover, clients):
    topic = uid("dupin")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=2)

    pub = RawClient(drover.mqtt_port)
    clients.append(pub)
    assert pub.connect(uid("pub")).reason == 0
    pub.send(publish_packet(topic, b"one", qos=2, pid=7))
    assert pub.expect(PUBREC, 5).body[:2] == b"\x00\x07"
    pub.send(publish_packet(topic, b"one", qos=2, pid=7, dup=True))  # our PUBREC "got lost"
    assert pub.expect(PUBREC, 5).body[:2] == b"\x00\x07"
    pub.send(ack_packet(PUBREL, 7))
    assert pub.expect(PUBCOMP, 5).body[:2] == b"\x00\x07"
    # The packet id is free again: a new message with it is a new message.
    pub.send(publish_packet(topic, b"two", qos=2, pid=7))
    assert pub.expect(PUBREC, 5).body[:2] == b"\x00\x07"
    pub.send(ack_packet(PUBREL, 7))
    assert pub.expect(PUBCOMP, 5).body[:2] == b"\x00\x07"

    sub.wait_messages(2, 5)
    time.sleep(0.5)
    assert [m.payload for m in sub.received()] == [b"one", b"two"]


def test_inbound_qos2_duplicate_across_reconnect_delivered_once(drover, clients):
    topic, cid = uid("dupin2"), uid("pub")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=2)

    pub, _ = _session(drover.mqtt_port, cid, 5, clean=True)
    clients.append(pub)
    pub.send(publish_packet(topic, b"only-once", qos=2, pid=9))
    assert pub.expect(PUBREC, 5).body[:2] == b"\x00\x09"
    pub.abort()  # the PUBREC was "lost": the publisher must resend

    again, ack = _session(drover.mqtt_port, cid, 5, clean=False)
    clients.append(again)
    assert ack.session_present
    again.send(publish_packet(topic, b"only-once", qos=2, pid=9, dup=True))
    assert again.expect(PUBREC, 5).body[:2] == b"\x00\x09"
    again.send(ack_packet(PUBREL, 9))
    assert again.expect(PUBCOMP, 5).body[:2] == b"\x00\x09"

    sub.wait_messages(1, 5)
    time.sleep(0.7)
    assert [m.payload for m in sub.received()] == [b"only-once"], "QoS 2 duplicate delivered twice"


def test_session_expiry_interval_elapses(drover, clients):
    topic, cid = uid("sexp"), uid("short")
    c = Paho(drover.mqtt_port, client_id=cid)
    clients.append(c)
    c.connect(clean_start=True, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=1))
    c.subscribe(topic, qos=1)
    c.disconnect()
    time.sleep(2.5)
    _publisher(drover.mqtt_port, clients).publish(topic, b"nobody-home", qos=1)
    back = Paho(drover.mqtt_port, client_id=cid)
    clients.append(back)
    back.connect(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=1))
    assert not back.session_present, "session outlived its 1 s Session Expiry Interval"
    time.sleep(0.7)
    assert back.received() == []


def test_session_within_expiry_is_resumed(drover, clients):
    topic, cid = uid("sexp-ok"), uid("short")
    c = Paho(drover.mqtt_port, client_id=cid)
    clients.append(c)
    c.connect(clean_start=True, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=5))
    c.subscribe(topic, qos=1)
    c.disconnect()
    _publisher(drover.mqtt_port, clients).publish(topic, b"kept", qos=1)
    back = Paho(drover.mqtt_port, client_id=cid)
    clients.append(back)
    back.connect(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=5))
    assert back.session_present
    assert [m.payload for m in back.wait_messages(1, 5)] == [b"kept"]


def test_large_payload_round_trip(drover, clients):
    topic = uid("large")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=1)
    payload = os.urandom(1_000_000)  # just under the default 1 MiB packet limit
    _publisher(drover.mqtt_port, clients).publish(topic, payload, qos=1)
    msgs = sub.wait_messages(1, 10)
    assert len(msgs) == 1 and msgs[0].payload == payload


def test_pingreq_pingresp(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    assert c.connect(uid("ping")).reason == 0
    for _ in range(3):
        c.send(b"\xc0\x00")
        assert c.expect(PINGRESP, 5).raw == b"\xd0\x00"

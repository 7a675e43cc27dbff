"""Malformed and illegal input on raw sockets: the server rejects it and stays up."""

import os
import socket
import time

import pytest

from clients import uid
from mqtt_raw import (CONNACK, Closed, dec_props, DISCONNECT, PINGRESP, SUBACK, RawClient, connect_packet,
                      disconnect_reason, enc_str, packet, publish_packet,
                      subscribe_packet)


def assert_healthy(srv):
    assert srv.alive(), "server process died"
    c = RawClient(srv.mqtt_port)
    try:
        ack = c.connect(uid("health"), version=4)
        assert ack.reason == 0, f"a fresh client is refused: {ack}"
        c.send(b"\xc0\x00")
        assert c.expect(PINGRESP, 5)
    finally:
        c.close()


def expect_v5_disconnect_then_close(c, reasons=None, min_reason=0x80, timeout=5):
    pkts, closed = c.read_until_closed(timeout)
    assert pkts, f"no DISCONNECT before close (closed={closed})"
    first = pkts[0]
    assert first.first_byte == 0xE0, f"expected DISCONNECT (0xE0), got {first!r}"
    rc = disconnect_reason(first)
    if reasons is not None:
        assert rc in reasons, f"DISCONNECT reason 0x{rc:02x}, expected {[hex(r) for r in reasons]}"
    assert rc >= min_reason, f"DISCONNECT reason 0x{rc:02x} is not an error"
    assert closed, "connection not closed after DISCONNECT"
    return rc


def expect_silent_close(c, timeout=5):
    """3.1.1 has no server DISCONNECT: the server just closes."""
    pkts, closed = c.read_until_closed(timeout)
    assert closed, "connection not closed"
    assert pkts == [], f"server sent {pkts} before closing a 3.1.1 connection"


def expect_close(c, timeout=5, allow_disconnect=True):
    pkts, closed = c.read_until_closed(timeout)
    assert closed, f"connection not closed (received {pkts})"
    for p in pkts:
        assert allow_disconnect and p.type == DISCONNECT and disconnect_reason(p) >= 0x80, \
            f"unexpected packet before close: {p!r}"


def connected(srv, version=5):
    c = RawClient(srv.mqtt_port)
    ack = c.connect(uid("raw"), version=version)
    assert ack.reason == 0
    return c


@pytest.mark.parametrize("garbage", [
    b"\x00\x00",
    b"\xff\xff\xff\xff\xff",
    # What curl sends: long enough that the bogus "packet" it starts (type 4) is complete.
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:1883\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    b"\x10\x02\x00\x00",  # CONNECT too short to hold a protocol name
], ids=["zeros", "ff", "http", "short-connect"])
def test_garbage_first_bytes_closed(drover, clients, garbage):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    c.send(garbage)
    pkts, closed = c.read_until_closed(5)
    assert closed, "garbage did not close the connection"
    assert not any(p.type == CONNACK and p.body[1:2] == b"\x00" for p in pkts), "garbage was accepted"
    assert_healthy(drover)


def test_first_packet_not_connect_closed(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    c.send(b"\xc0\x00")  # PINGREQ before CONNECT
    pkts, closed = c.read_until_closed(5)
    assert closed
    assert all(p.type not in (PINGRESP, CONNACK) for p in pkts), pkts
    assert_healthy(drover)


def test_v5_publish_qos3_disconnect_0x81(drover, clients):
    c = connected(drover)
    clients.append(c)
    bad = publish_packet("a/b", b"x", flags_override=0x06, pid=1)
    assert bad[0] == 0x36
    c.send(bad)
    expect_v5_disconnect_then_close(c, reasons={0x81})
    assert_healthy(drover)


def test_v311_publish_qos3_closed(drover, clients):
    c = connected(drover, version=4)
    clients.append(c)
    c.send(publish_packet("a/b", b"x", flags_override=0x06, pid=1, v5=False))
    expect_silent_close(c)
    assert_healthy(drover)


@pytest.mark.parametrize("topic", ["a/+/b", "a/#", "+", "a\x00b", b"a\xffb"],
                         ids=["plus", "hash", "bare-plus", "nul", "bad-utf8"])
def test_v5_publish_invalid_topic_name_disconnect(drover, clients, topic):
    c = connected(drover)
    clients.append(c)
    c.send(publish_packet(topic, b"x", qos=0))
    expect_v5_disconnect_then_close(c)
    assert_healthy(drover)


@pytest.mark.parametrize("topic", ["a/+/b", "a/#"])
def test_v311_publish_wildcard_topic_closed(drover, clients, topic):
    c = connected(drover, version=4)
    clients.append(c)
    c.send(publish_packet(topic, b"x", qos=0, v5=False))
    expect_silent_close(c)
    assert_healthy(drover)


def test_remaining_length_five_bytes_after_connect(drover, clients):
    c = connected(drover)
    clients.append(c)
    c.send(b"\x30\xff\xff\xff\xff\x7f")
    expect_close(c)
    assert_healthy(drover)


def test_remaining_length_five_bytes_as_first_packet(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    c.send(b"\x10\xff\xff\xff\xff\x01")
    expect_close(c)
    assert_healthy(drover)


@pytest.mark.parametrize("shape", ["v5-shaped", "v311-shaped"])
def test_connect_protocol_level_6_refused(drover, clients, shape):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    c.send(connect_packet(uid("lvl6"), version=6, v5_shaped=(shape == "v5-shaped")))
    pkts, closed = c.read_until_closed(5)
    assert pkts and pkts[0].type == CONNACK, f"no CONNACK for protocol level 6 (got {pkts}, closed={closed})"
    code = pkts[0].body[1]
    assert code in (0x84, 0x01), f"CONNACK code 0x{code:02x}, expected 0x84 or 0x01"
    assert closed, "connection not closed after refusing the protocol version"
    assert_healthy(drover)


def test_connect_wrong_protocol_name_closed(drover, clients):
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    c.send(connect_packet(uid("name"), version=4, protocol_name="MQTX"))
    pkts, closed = c.read_until_closed(5)
    assert closed
    assert not any(p.type == CONNACK and p.body[1] == 0 for p in pkts), "bad protocol name accepted"
    assert_healthy(drover)


@pytest.mark.parametrize("version", [5, 4], ids=["v5", "v311"])
def test_connect_reserved_flag_set_closed(drover, clients, version):
    raw = bytearray(connect_packet(uid("resv"), version=version))
    # fixed header (2 bytes) + protocol name (6) + level (1) -> flags byte at index 9
    raw[9] |= 0x01
    c = RawClient(drover.mqtt_port)
    clients.append(c)
    c.send(bytes(raw))
    pkts, closed = c.read_until_closed(5)
    assert closed, "CONNECT with the reserved flag set was not refused"
    assert not any(p.type == CONNACK and p.body[1] == 0 for p in pkts), "reserved flag accepted"
    assert_healthy(drover)


def test_v5_second_connect_protocol_error_0x82(drover, clients):
    c = connected(drover)
    clients.append(c)
    c.send(connect_packet(uid("again"), version=5))
    expect_v5_disconnect_then_close(c, reasons={0x82})
    assert_healthy(drover)


def test_v311_second_connect_closed(drover, clients):
    c = connected(drover, version=4)
    clients.append(c)
    c.send(connect_packet(uid("again"), version=4))
    expect_silent_close(c)
    assert_healthy(drover)


def test_subscribe_with_wrong_fixed_header_flags(drover, clients):
    c = connected(drover)
    clients.append(c)
    good = subscribe_packet(1, [("a/b", 0)])
    c.send(bytes([0x80]) + good[1:])  # SUBSCRIBE flags must be 0b0010
    expect_close(c)
    assert_healthy(drover)


@pytest.mark.parametrize("version", [5, 4], ids=["v5", "v311"])
def test_subscribe_invalid_filter_refused(drover, clients, version):
    c = connected(drover, version=version)
    clients.append(c)
    c.send(subscribe_packet(7, [("ok/+", 0), ("a/#/b", 0)], v5=(version == 5)))
    try:
        p = c.read_packet(5)
    except Closed:  # closing the connection is also acceptable
        assert_healthy(drover)
        return
    if p.type == SUBACK:
        pos = 2
        if version == 5:
            _props, pos = dec_props(p.body, 2)
        codes = list(p.body[pos:])
        assert len(codes) == 2 and codes[0] == 0 and codes[1] >= 0x80, f"SUBACK codes {codes}"
        assert_healthy(drover)
    else:
        assert version == 5 and p.type == DISCONNECT and disconnect_reason(p) >= 0x80, p
        expect_close(c)


def test_subscribe_with_no_filters_is_malformed(drover, clients):
    c = connected(drover)
    clients.append(c)
    c.send(packet(8, 0x02, b"\x00\x01\x00"))  # packet id + empty properties, no payload
    expect_close(c)
    assert_healthy(drover)


def test_truncated_packet_then_close_does_not_hurt(drover, clients):
    c = connected(drover)
    c.send(b"\x30\x40" + enc_str("a") + b"xx")  # says 64 bytes, sends a few
    c.abort()
    assert_healthy(drover)


def test_connection_without_connect_is_closed_after_connect_timeout(drover_factory, clients):
    if os.environ.get("DROVER_E2E_MOSQUITTO") == "1":
        pytest.skip("Drover setting")
    srv = drover_factory(DROVER_LIMITS_CONNECT_TIMEOUT=1)
    c = RawClient(srv.mqtt_port)
    clients.append(c)
    t0 = time.monotonic()
    pkts, closed = c.read_until_closed(6)
    took = time.monotonic() - t0
    assert closed and pkts == [], f"idle connection: closed={closed} packets={pkts}"
    assert 0.5 <= took <= 3.0, f"closed after {took:.2f}s with a 1 s connect timeout"
    assert_healthy(srv)


def test_many_abrupt_connections(drover):
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", drover.mqtt_port), timeout=5)
        s.sendall(connect_packet(uid("x"), version=5)[:7])
        s.close()
    assert_healthy(drover)


def test_server_still_alive_at_the_end(drover):
    assert drover.alive()
    assert_healthy(drover)

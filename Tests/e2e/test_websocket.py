"""MQTT over WebSocket on the HTTP port, path /mqtt, subprotocol 'mqtt'."""

import base64
import hashlib
import os
import socket
import struct

import pytest

from clients import Paho, uid
from mqtt_raw import connect_packet, publish_packet, subscribe_packet

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def ws_server(drover_module_factory):
    return drover_module_factory(DROVER_HTTP_BIND="127.0.0.1")


@pytest.mark.parametrize("ws_version", [5, 4], ids=["ws-v5", "ws-v311"])
def test_paho_websocket_round_trip_with_tcp_client(ws_server, clients, ws_version):
    topic = uid("ws")
    ws = Paho(ws_server.http_port, version=ws_version, transport="websockets", ws_path="/mqtt")
    tcp = Paho(ws_server.mqtt_port)
    clients += [ws, tcp]
    ws.connect()
    tcp.connect()
    ws.subscribe(topic + "/to-ws", qos=1)
    tcp.subscribe(topic + "/to-tcp", qos=1)

    tcp.publish(topic + "/to-ws", b"hello ws", qos=1)
    ws.publish(topic + "/to-tcp", b"hello tcp", qos=1)
    big = os.urandom(20_000)  # larger than one TCP segment and typical WebSocket frame sizes
    tcp.publish(topic + "/to-ws", big, qos=1)

    assert [m.payload for m in ws.wait_messages(2, 5)] == [b"hello ws", big]
    assert [m.payload for m in tcp.wait_messages(1, 5)] == [b"hello tcp"]


def _ws_handshake(port, protocols="mqtt"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           f"Sec-WebSocket-Protocol: {protocols}\r\n\r\n")
    s.sendall(req.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, f"connection closed during handshake: {data!r}"
        data += chunk
        assert len(data) < 65536
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return s, lines[0], headers, key, rest


def _ws_send_binary(s, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = bytes([0x82, 0x80 | n])
    elif n < 65536:
        hdr = bytes([0x82, 0x80 | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(hdr + mask + masked)


def _ws_read_frame(s, buf):
    def need(k):
        nonlocal buf
        while len(buf) < k:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            buf += chunk
    need(2)
    opcode = buf[0] & 0x0F
    masked = buf[1] & 0x80
    n = buf[1] & 0x7F
    pos = 2
    if n == 126:
        need(4)
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif n == 127:
        need(10)
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    assert not masked, "server frames must not be masked"
    need(pos + n)
    return opcode, buf[pos:pos + n], buf[pos + n:]


def test_raw_websocket_handshake_negotiates_mqtt(ws_server):
    s, status, headers, key, rest = _ws_handshake(ws_server.http_port)
    try:
        assert status.split()[1] == "101", status
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert headers.get("sec-websocket-accept") == expected
        assert headers.get("sec-websocket-protocol") == "mqtt", f"subprotocol: {headers}"
        assert headers.get("upgrade", "").lower() == "websocket"

        _ws_send_binary(s, connect_packet(uid("rawws"), version=4))
        data = b""
        buf = rest
        while len(data) < 4:
            opcode, payload, buf = _ws_read_frame(s, buf)
            assert opcode in (0x0, 0x2), f"expected a binary frame, got opcode {opcode}"
            data += payload
        assert data[:4] == b"\x20\x02\x00\x00", f"CONNACK over WebSocket: {data!r}"
    finally:
        s.close()


def test_websocket_picks_mqtt_from_offered_list(ws_server):
    s, status, headers, _key, _rest = _ws_handshake(ws_server.http_port, protocols="foo, mqtt")
    try:
        assert status.split()[1] == "101", status
        assert headers.get("sec-websocket-protocol") == "mqtt"
    finally:
        s.close()


def _ws_read_mqtt(s, buf, n, timeout=5):
    """Read WebSocket binary frames until at least n bytes of MQTT stream arrived."""
    s.settimeout(timeout)
    data = b""
    while len(data) < n:
        opcode, payload, buf = _ws_read_frame(s, buf)
        assert opcode in (0x0, 0x2), f"expected a binary frame, got opcode {opcode}"
        data += payload
    return data, buf


def test_websocket_frames_are_a_byte_stream(ws_server):
    """MQTT packets may be split across WebSocket frames, and one frame may hold several."""
    s, status, _headers, _key, buf = _ws_handshake(ws_server.http_port)
    try:
        assert status.split()[1] == "101", status
        cp = connect_packet(uid("wsplit"), version=4)
        _ws_send_binary(s, cp[:5])
        _ws_send_binary(s, cp[5:])
        data, buf = _ws_read_mqtt(s, buf, 4)
        assert data[:4] == b"\x20\x02\x00\x00", f"CONNACK: {data!r}"

        topic = uid("wsstream")
        both = subscribe_packet(1, [(topic, 0)], v5=False) + publish_packet(topic, b"hi", v5=False)
        _ws_send_binary(s, both)
        suback = b"\x90\x03\x00\x01\x00"
        publish = publish_packet(topic, b"hi", v5=False)
        data, buf = _ws_read_mqtt(s, buf, len(suback) + len(publish))
        assert data == suback + publish, f"got {data!r}"
    finally:
        s.close()

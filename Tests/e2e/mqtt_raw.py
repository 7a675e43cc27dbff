"""A tiny, independent MQTT 3.1.1 / 5.0 packet encoder/decoder over raw sockets.

Used by the end-to-end tests for things ordinary clients refuse to do
(malformed packets, never reading the socket, exact CONNACK bytes, ...).
Everything here talks to 127.0.0.1 only and every read is bounded by a timeout.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"

# Packet types (high nibble of the fixed header).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

# MQTT 5 property identifiers -> wire type.
PROP_TYPES = {
    0x01: "byte",  # Payload Format Indicator
    0x02: "u32",  # Message Expiry Interval
    0x03: "str",  # Content Type
    0x08: "str",  # Response Topic
    0x09: "bin",  # Correlation Data
    0x0B: "varint",  # Subscription Identifier
    0x11: "u32",  # Session Expiry Interval
    0x12: "str",  # Assigned Client Identifier
    0x13: "u16",  # Server Keep Alive
    0x15: "str",  # Authentication Method
    0x16: "bin",  # Authentication Data
    0x17: "byte",  # Request Problem Information
    0x18: "u32",  # Will Delay Interval
    0x19: "byte",  # Request Response Information
    0x1A: "str",  # Response Information
    0x1C: "str",  # Server Reference
    0x1F: "str",  # Reason String
    0x21: "u16",  # Receive Maximum
    0x22: "u16",  # Topic Alias Maximum
    0x23: "u16",  # Topic Alias
    0x24: "byte",  # Maximum QoS
    0x25: "byte",  # Retain Available
    0x26: "pair",  # User Property
    0x27: "u32",  # Maximum Packet Size
    0x28: "byte",  # Wildcard Subscription Available
    0x29: "byte",  # Subscription Identifier Available
    0x2A: "byte",  # Shared Subscription Available
}

P_MESSAGE_EXPIRY = 0x02
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_WILL_DELAY = 0x18
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_PACKET_SIZE = 0x27


class ProtocolViolation(AssertionError):
    """The peer sent bytes we could not parse as MQTT."""


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------

def enc_varint(n: int) -> bytes:
    if n < 0 or n > 268_435_455:
        raise ValueError(n)
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_str(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def enc_props(props: list[tuple[int, object]] | None) -> bytes:
    body = bytearray()
    for pid, value in props or []:
        kind = PROP_TYPES[pid]
        body += enc_varint(pid)
        if kind == "byte":
            body += struct.pack("!B", value)
        elif kind == "u16":
            body += struct.pack("!H", value)
        elif kind == "u32":
            body += struct.pack("!I", value)
        elif kind == "varint":
            body += enc_varint(value)
        elif kind in ("str", "bin"):
            body += enc_str(value)
        elif kind == "pair":
            k, v = value
            body += enc_str(k) + enc_str(v)
    return enc_varint(len(body)) + bytes(body)


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | (flags & 0x0F)]) + enc_varint(len(body)) + body


@dataclass
class Will:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    props: list[tuple[int, object]] | None = None


def connect_packet(
    client_id: str = "",
    version: int = 5,
    clean: bool = True,
    keepalive: int = 60,
    props: list[tuple[int, object]] | None = None,
    will: Will | None = None,
    username: str | None = None,
    password: bytes | None = None,
    protocol_name: str = "MQTT",
    v5_shaped: bool | None = None,
) -> bytes:
    """CONNECT. `version` is the protocol level byte (4 = 3.1.1, 5 = 5.0).

    `v5_shaped` decides whether a properties section is written (defaults to
    version >= 5), so invalid levels can be sent in either shape.
    """
    if v5_shaped is None:
        v5_shaped = version >= 5
    flags = 0
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = bytearray()
    body += enc_str(protocol_name)
    body += bytes([version, flags])
    body += struct.pack("!H", keepalive)
    if v5_shaped:
        body += enc_props(props)
    body += enc_str(client_id)
    if will is not None:
        if v5_shaped:
            body += enc_props(will.props)
        body += enc_str(will.topic)
        body += enc_str(will.payload)
    if username is not None:
        body += enc_str(username)
    if password is not None:
        body += enc_str(password)
    return packet(CONNECT, 0, bytes(body))


def publish_packet(
    topic: str | bytes,
    payload: bytes = b"",
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    pid: int | None = None,
    props: list[tuple[int, object]] | None = None,
    v5: bool = True,
    flags_override: int | None = None,
) -> bytes:
    flags = (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    if flags_override is not None:
        flags = flags_override
    body = bytearray(enc_str(topic))
    if qos > 0 or (flags_override is not None and (flags_override >> 1) & 3):
        body += struct.pack("!H", pid if pid is not None else 1)
    if v5:
        body += enc_props(props)
    body += payload
    return packet(PUBLISH, flags, bytes(body))


def subscribe_packet(
    pid: int,
    filters: list[tuple[str, int]],
    props: list[tuple[int, object]] | None = None,
    v5: bool = True,
) -> bytes:
    """filters: (topic filter, options byte). For 3.1.1 the options byte is the QoS."""
    body = bytearray(struct.pack("!H", pid))
    if v5:
        body += enc_props(props)
    for flt, opts in filters:
        body += enc_str(flt) + bytes([opts])
    return packet(SUBSCRIBE, 0x02, bytes(body))


def ack_packet(ptype: int, pid: int, reason: int | None = None) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP."""
    flags = 0x02 if ptype == PUBREL else 0
    body = struct.pack("!H", pid)
    if reason is not None:
        body += bytes([reason])
    return packet(ptype, flags, body)


def pingreq_packet() -> bytes:
    return b"\xc0\x00"


def disconnect_packet(reason: int | None = None, v5: bool = True) -> bytes:
    if not v5 or reason is None:
        return b"\xe0\x00"
    return packet(DISCONNECT, 0, bytes([reason]) + enc_props(None))


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------

def dec_varint(buf: bytes, pos: int) -> tuple[int, int]:
    mult = 1
    value = 0
    for i in range(4):
        if pos >= len(buf):
            raise ProtocolViolation("truncated variable byte integer")
        b = buf[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128
    raise ProtocolViolation("variable byte integer longer than 4 bytes")


def dec_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(buf):
        raise ProtocolViolation("truncated string length")
    (n,) = struct.unpack_from("!H", buf, pos)
    pos += 2
    if pos + n > len(buf):
        raise ProtocolViolation("truncated string")
    return bytes(buf[pos:pos + n]), pos + n


def dec_props(buf: bytes, pos: int) -> tuple[list[tuple[int, object]], int]:
    length, pos = dec_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ProtocolViolation("properties overrun the packet")
    out: list[tuple[int, object]] = []
    while pos < end:
        pid, pos = dec_varint(buf, pos)
        kind = PROP_TYPES.get(pid)
        if kind is None:
            raise ProtocolViolation(f"unknown property id 0x{pid:02x}")
        if kind == "byte":
            value, pos = buf[pos], pos + 1
        elif kind == "u16":
            (value,) = struct.unpack_from("!H", buf, pos)
            pos += 2
        elif kind == "u32":
            (value,) = struct.unpack_from("!I", buf, pos)
            pos += 4
        elif kind == "varint":
            value, pos = dec_varint(buf, pos)
        elif kind == "str":
            raw, pos = dec_str(buf, pos)
            value = raw.decode("utf-8")
        elif kind == "bin":
            value, pos = dec_str(buf, pos)
        else:  # pair
            k, pos = dec_str(buf, pos)
            v, pos = dec_str(buf, pos)
            value = (k.decode("utf-8"), v.decode("utf-8"))
        out.append((pid, value))
    if pos != end:
        raise ProtocolViolation("property overran its section")
    return out, end


def props_get(props: list[tuple[int, object]], pid: int, default=None):
    for k, v in props:
        if k == pid:
            return v
    return default


def props_all(props: list[tuple[int, object]], pid: int) -> list:
    return [v for k, v in props if k == pid]


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    raw: bytes = b""

    @property
    def first_byte(self) -> int:
        return (self.type << 4) | self.flags

    def __repr__(self) -> str:  # keep assertion messages readable
        body = self.body if len(self.body) <= 64 else self.body[:64] + b"..."
        return f"Packet(type={self.type}, flags=0x{self.flags:x}, body={body!r})"


@dataclass
class Connack:
    session_present: bool
    reason: int
    props: list[tuple[int, object]] = field(default_factory=list)

    def prop(self, pid: int, default=None):
        return props_get(self.props, pid, default)


def parse_connack(p: Packet, v5: bool) -> Connack:
    assert p.type == CONNACK, f"expected CONNACK, got {p!r}"
    if len(p.body) < 2:
        raise ProtocolViolation(f"short CONNACK {p!r}")
    props: list = []
    if v5 and len(p.body) > 2:
        props, _ = dec_props(p.body, 2)
    return Connack(bool(p.body[0] & 1), p.body[1], props)


@dataclass
class Publish:
    topic: bytes
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    pid: int | None
    props: list[tuple[int, object]]

    def prop(self, pid: int, default=None):
        return props_get(self.props, pid, default)


def parse_publish(p: Packet, v5: bool) -> Publish:
    assert p.type == PUBLISH, f"expected PUBLISH, got {p!r}"
    qos = (p.flags >> 1) & 3
    topic, pos = dec_str(p.body, 0)
    pid = None
    if qos:
        (pid,) = struct.unpack_from("!H", p.body, pos)
        pos += 2
    props: list = []
    if v5:
        props, pos = dec_props(p.body, pos)
    return Publish(topic, bytes(p.body[pos:]), qos, bool(p.flags & 1), bool(p.flags & 8), pid, props)


def disconnect_reason(p: Packet) -> int:
    assert p.type == DISCONNECT, f"expected DISCONNECT, got {p!r}"
    return p.body[0] if p.body else 0


# --------------------------------------------------------------------------
# A raw client
# --------------------------------------------------------------------------

class Closed(Exception):
    """The peer closed the connection."""


class RawClient:
    def __init__(self, port: int, rcvbuf: int | None = None, timeout: float = 5.0,
                 host: str = HOST):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Must be set before connect() for the window to be small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.closed = False

    # -- io -------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> bool:
        """Send, returning False instead of raising when the peer is gone."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("timed out waiting for data") from e
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
            self.closed = True
            raise Closed() from e
        if not chunk:
            self.closed = True
            raise Closed()
        self.buf += chunk

    def read_packet(self, timeout: float = 5.0) -> Packet:
        """Next packet. Raises Closed on EOF/reset, TimeoutError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._try_parse()
            if pkt is not None:
                return pkt
            self._fill(deadline)

    def _try_parse(self) -> Packet | None:
        if len(self.buf) < 2:
            return None
        mult, length, pos = 1, 0, 1
        while True:
            if pos >= len(self.buf):
                return None
            b = self.buf[pos]
            pos += 1
            length += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
            if pos > 4:
                raise ProtocolViolation("server sent a remaining length longer than 4 bytes")
        if len(self.buf) < pos + length:
            return None
        raw = bytes(self.buf[:pos + length])
        body = raw[pos:]
        del self.buf[:pos + length]
        return Packet(raw[0] >> 4, raw[0] & 0x0F, body, raw)

    def read_until_closed(self, timeout: float = 5.0) -> tuple[list[Packet], bool]:
        """Collect packets until the peer closes. Returns (packets, closed)."""
        deadline = time.monotonic() + timeout
        got: list[Packet] = []
        while True:
            try:
                got.append(self.read_packet(max(0.001, deadline - time.monotonic())))
            except Closed:
                return got, True
            except TimeoutError:
                return got, False

    def expect(self, ptype: int, timeout: float = 5.0, skip: tuple[int, ...] = ()) -> Packet:
        deadline = time.monotonic() + timeout
        while True:
            p = self.read_packet(max(0.001, deadline - time.monotonic()))
            if p.type == ptype:
                return p
            if p.type in skip:
                continue
            raise AssertionError(f"expected packet type {ptype}, got {p!r}")

    # -- conveniences ------------------------------------------------------
    def connect(self, client_id: str = "", version: int = 5, timeout: float = 5.0,
                **kw) -> Connack:
        self.send(connect_packet(client_id=client_id, version=version, **kw))
        return parse_connack(self.read_packet(timeout), v5=version >= 5)

    def subscribe(self, filters: list[tuple[str, int]], pid: int = 1, v5: bool = True,
                  props=None, timeout: float = 5.0) -> list[int]:
        self.send(subscribe_packet(pid, filters, props=props, v5=v5))
        p = self.expect(SUBACK, timeout)
        (got_pid,) = struct.unpack_from("!H", p.body, 0)
        assert got_pid == pid, f"SUBACK for packet id {got_pid}, expected {pid}"
        pos = 2
        if v5:
            _, pos = dec_props(p.body, pos)
        return list(p.body[pos:])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Close with RST (SO_LINGER 0), no DISCONNECT."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



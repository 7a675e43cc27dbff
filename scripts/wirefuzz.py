#!/usr/bin/env python3
"""wirefuzz: a wire-level fuzzer for Drover's MQTT listeners (TCP, WebSocket, mutual TLS).

    scripts/wirefuzz.sh [--duration 60] [--clients 32] [--seed N] [--round-seconds 5]
    scripts/wirefuzz.sh --host 127.0.0.1 --port 1883 --http-port 8080 [--mqtts-port 8883 --data-dir D]
    scripts/wirefuzz.sh --replay wirefuzz-out/crash-.../reproducer.json

By default it starts its own `drover serve` (from --binary, default .build/debug/drover) in a
temporary data directory on 127.0.0.1 with free ports and stops it (by its PID) at the end. With
--host/--port it attaches to a running server instead (--pid lets it watch that process).

Many client threads send valid MQTT 3.1.1 / 5.0 sessions with mutated fields (lengths, property
sets, packet order, cut-short QoS flows), bit-flipped and truncated packets, random bytes,
WebSocket framing and handshake abuse, and shadow requests with long names and pathological JSON.
Every --round-seconds it checks that the process is alive, that GET /health answers 200, that a
fresh TCP client gets its own publish back, and that the shadow service answers a get for the
thing `fuzzcheck`. A crash (the process exited) or a hang (a check not answered within
--check-timeout, twice) stops the run: the last inputs of every client go to --out, with the tail
of the server log, and (own server only) each of them is replayed alone on a fresh server to find
the one that kills it. Exit status: 0 clean, 1 crash or hang, 2 usage / setup error.

Standard library only. The mutual-TLS device is provisioned over the signed HTTP API (SigV4; by
botocore when it is importable, else a built-in signer); without credentials mTLS is skipped.
"""

from __future__ import annotations

import argparse
import base64
import collections
import configparser
import datetime
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BINARY = ROOT / ".build" / "debug" / "drover"
HOST = "127.0.0.1"
REGION = "us-east-1"
CHECK_THING = "fuzzcheck"
DEVICE_THING = "wirefuzz-device"
POLICY_NAME = "wirefuzz-allow-all"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# ==========================================================================================
# MQTT encoding (adapted from Tests/e2e/mqtt_raw.py, extended so every length can lie)
# ==========================================================================================

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
PTYPE_NAMES = {0: "RESERVED0", 1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
               7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ",
               13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}
MAX_VARINT = 268_435_455

PROP = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint", 0x11: "u32",
    0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "u32", 0x19: "byte",
    0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16", 0x24: "byte",
    0x25: "byte", 0x26: "pair", 0x27: "u32", 0x28: "byte", 0x29: "byte", 0x2A: "byte",
}
# What a client may put on each packet (MQTT 5.0 section 3).
ALLOWED = {
    "connect": [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16],
    "will": [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26],
    "publish": [0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x03],
    "ack": [0x1F, 0x26],
    "subscribe": [0x0B, 0x26],
    "unsubscribe": [0x26],
    "disconnect": [0x11, 0x1F, 0x26, 0x1C],
    "auth": [0x15, 0x16, 0x1F, 0x26],
}
REPEATABLE = {0x26}  # only User Property may repeat on client packets (0x0B only server-side PUBLISH)
EDGE_INTS = {
    "byte": [0, 1, 2, 3, 127, 128, 255],
    "u16": [0, 1, 2, 64, 65, 100, 65534, 65535],
    "u32": [0, 1, 2, 60, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF],
    "varint": [0, 1, 127, 128, 16383, 16384, 2097151, 2097152, MAX_VARINT],
}


class Raw(bytes):
    """A property value written as given (wrong type, truncated...)."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint_raw(n: int, nbytes: int) -> bytes:
    """n in exactly nbytes bytes (non-minimal, or 5 bytes: malformed)."""
    out = bytearray()
    for i in range(nbytes):
        b = n % 128
        n //= 128
        out.append(b | (0x80 if i < nbytes - 1 else 0))
    return bytes(out)


def vbi(n: int) -> bytes:
    if 0 <= n <= MAX_VARINT:
        return varint(n)
    return b"\xff\xff\xff\xff\x7f"  # 5 bytes: never valid


def bs(s) -> bytes:
    return s.encode("utf-8", "surrogatepass") if isinstance(s, str) else bytes(s)


def u8(n: int) -> bytes:
    return bytes([n & 0xFF])


def u16(n: int) -> bytes:
    return struct.pack("!H", n & 0xFFFF)


def u32(n: int) -> bytes:
    return struct.pack("!I", n & 0xFFFFFFFF)


def mstr(s, lie: int | None = None) -> bytes:
    b = bs(s)
    return u16(len(b) if lie is None else lie) + b


def enc_prop(pid: int, value) -> bytes:
    out = vbi(pid)
    if isinstance(value, Raw):
        return out + bytes(value)
    kind = PROP.get(pid)
    if kind == "byte":
        return out + u8(value)
    if kind == "u16":
        return out + u16(value)
    if kind == "u32":
        return out + u32(value)
    if kind == "varint":
        return out + vbi(value)
    if kind in ("str", "bin"):
        return out + mstr(value)
    if kind == "pair":
        k, v = value
        return out + mstr(k) + mstr(v)
    return out + (bs(value) if isinstance(value, (bytes, str)) else b"")


def enc_props(props, lie: int | None = None) -> bytes:
    body = b"".join(enc_prop(p, v) for p, v in (props or []))
    return vbi(len(body) if lie is None else lie) + body


def pkt(ptype: int, flags: int, body: bytes, rl: int | None = None, rl_bytes: int | None = None) -> bytes:
    n = len(body) if rl is None else rl
    hdr = varint_raw(n, rl_bytes) if rl_bytes else vbi(n)
    return bytes([((ptype & 0xF) << 4) | (flags & 0xF)]) + hdr + body


def connect_pkt(cid="", v=5, clean=True, keepalive=60, props=None, will=None, user=None, pw=None,
                proto=None, flags=None, cid_lie=None, props_lie=None, v5_shape=None) -> bytes:
    if v5_shape is None:
        v5_shape = v >= 5
    if proto is None:
        proto = "MQIsdp" if v == 3 else "MQTT"
    f = 0x02 if clean else 0
    if will is not None:
        f |= 0x04 | ((will.get("qos", 0) & 3) << 3) | (0x20 if will.get("retain") else 0)
    if user is not None:
        f |= 0x80
    if pw is not None:
        f |= 0x40
    if flags is not None:
        f = flags
    body = bytearray(mstr(proto) + bytes([v & 0xFF, f & 0xFF]) + u16(keepalive))
    if v5_shape:
        body += enc_props(props, props_lie)
    body += mstr(cid, cid_lie)
    if will is not None:
        if v5_shape:
            body += enc_props(will.get("props"), will.get("props_lie"))
        body += mstr(will.get("topic", "wf/will"), will.get("topic_lie"))
        body += mstr(will.get("payload", b""))
    if user is not None:
        body += mstr(user)
    if pw is not None:
        body += mstr(pw)
    return pkt(CONNECT, 0, bytes(body))


def publish_pkt(topic, payload=b"", qos=0, retain=False, dup=False, pid=1, props=None, v5=True,
                flags=None, topic_lie=None, props_lie=None) -> bytes:
    f = ((qos & 3) << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    if flags is not None:
        f = flags
    body = bytearray(mstr(topic, topic_lie))
    if (f >> 1) & 3:
        body += u16(pid)
    if v5:
        body += enc_props(props, props_lie)
    body += bs(payload)
    return pkt(PUBLISH, f, bytes(body))


def subscribe_pkt(pid, filters, props=None, v5=True, flags=0x02, props_lie=None, lies=None) -> bytes:
    body = bytearray(u16(pid))
    if v5:
        body += enc_props(props, props_lie)
    for i, (flt, opts) in enumerate(filters):
        body += mstr(flt, (lies or {}).get(i)) + u8(opts)
    return pkt(SUBSCRIBE, flags, bytes(body))


def unsubscribe_pkt(pid, filters, props=None, v5=True, flags=0x02) -> bytes:
    body = bytearray(u16(pid))
    if v5:
        body += enc_props(props)
    for flt in filters:
        body += mstr(flt)
    return pkt(UNSUBSCRIBE, flags, bytes(body))


def ack_pkt(ptype, pid, reason=None, props=None, v5=True, flags=None) -> bytes:
    f = (0x02 if ptype in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0) if flags is None else flags
    body = u16(pid)
    if v5 and (reason is not None or props is not None):
        body += u8(reason or 0)
        if props is not None:
            body += enc_props(props)
    return pkt(ptype, f, body)


def disconnect_pkt(reason=None, props=None, v5=True) -> bytes:
    if not v5 or (reason is None and props is None):
        return b"\xe0\x00"
    body = u8(reason or 0)
    if props is not None:
        body += enc_props(props)
    return pkt(DISCONNECT, 0, body)


def auth_pkt(reason=0x18, props=None) -> bytes:
    return pkt(AUTH, 0, u8(reason) + enc_props(props))


PINGREQ_PKT = b"\xc0\x00"


def parse_frames(buf: bytes | bytearray, limit: int = 1 << 30):
    """Complete MQTT packets at the start of buf: ([(first_byte, body)], anomalies, consumed)."""
    out, anomalies, pos = [], [], 0
    n = len(buf)
    while pos + 2 <= n and len(out) < limit:
        mult, length, p = 1, 0, pos + 1
        ok = False
        for i in range(5):
            if p >= n:
                break
            b = buf[p]
            p += 1
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                ok = True
                break
            if i == 3:
                anomalies.append("server sent a remaining length longer than 4 bytes")
                return out, anomalies, n
        if not ok or p + length > n:
            break
        out.append((buf[pos], bytes(buf[p:p + length])))
        pos = p + length
    return out, anomalies, pos


def dec_props(body: bytes, pos: int):
    length = 0
    mult = 1
    for _ in range(4):
        b = body[pos]
        pos += 1
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return body[pos:pos + length], pos + length


# ==========================================================================================
# Value generators
# ==========================================================================================

ALNUM = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ALNUM_TABLE = bytes(ALNUM[i % len(ALNUM)] for i in range(256))


def alnum(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n).translate(ALNUM_TABLE)


BAD_UTF8 = [b"\xff\xfe", b"a\x00b", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
            b"\x80", b"\xef\xbf\xbf", b"\xef\xbb\xbfbom", b"ctl\x01\x7f\xc2\x9f", b"\xf0\x9f\x98"]


def edge_str(rng: random.Random, max_len: int = 65535) -> bytes:
    r = rng.random()
    if r < 0.15:
        return b""
    if r < 0.35:
        return alnum(rng, rng.randint(1, 64))
    if r < 0.55:
        return alnum(rng, rng.choice([max_len, max_len - 1, 1024, 4096, 32768]))
    if r < 0.65:
        k = rng.choice([1, 100, max_len // 2])
        return ("é" * k).encode()[:max_len]
    if r < 0.72:
        return ("\U0001F600" * (max_len // 4)).encode()[:max_len]
    return rng.choice(BAD_UTF8) + alnum(rng, rng.randint(0, 8))


def edge_topic(rng: random.Random, x=None) -> bytes:
    base = [b"", b"a", b"/", b"//", b"a/b/c", b"a/+/b", b"#", b"a/#", b"+", b"$SYS/wf", b"$aws/things/wf/shadow/update",
            b"$share/g/a", b"wf/\x00/x", b" ", "wf/\u2028/x".encode(), b"wf/ /x", b"$", b"$$"]
    r = rng.random()
    if r < 0.5:
        return rng.choice(base)
    if r < 0.65:
        return b"wf/" + alnum(rng, rng.choice([65532, 65000, 30000, 1000]))
    if r < 0.75:
        return b"a/" * 32767 + b"a"  # 65535 bytes, 32768 levels
    if r < 0.85:
        return b"/" * rng.choice([1000, 65535])
    return b"wf/" + rng.choice(BAD_UTF8)


SHARE_LONG = b"$share/g/" + b"f" * 65500


def edge_filter(rng: random.Random) -> bytes:
    base = [SHARE_LONG, b"$share/g/#", b"$share/g/+/x", b"$share//a", b"$share/g", b"$share/g/", b"$share/+/a",
            b"$share/g#/a", b"$share/g+/a", b"$share/" + b"g" * 65000 + b"/a", b"#/a", b"a/#/b", b"a+", b"a#",
            b"+/+/#", b"#", b"+", b"", b"/", b"$SYS/#", b"$aws/things/+/shadow/#", b"a//b", b"+a/b",
            b"$share/g/$share/h/x", b"wf/\x00", b"\xff"]
    r = rng.random()
    if r < 0.6:
        return rng.choice(base)
    if r < 0.75:
        return alnum(rng, rng.choice([65535, 65534, 2048]))
    if r < 0.85:
        return b"+/" * 32767 + b"#"  # 65535 bytes
    return b"wf/" + rng.choice(BAD_UTF8)


def prop_value(rng: random.Random, pid: int, edgy: bool = True):
    kind = PROP.get(pid, "raw")
    if kind in EDGE_INTS:
        if edgy or rng.random() < 0.3:
            return rng.choice(EDGE_INTS[kind])
        return rng.randint(1, {"byte": 1, "u16": 100, "u32": 3600, "varint": 1000}[kind])
    if kind == "str":
        return edge_str(rng) if edgy else alnum(rng, rng.randint(0, 24))
    if kind == "bin":
        return rng.randbytes(rng.choice([0, 1, 16, 1024, 65535]) if edgy else rng.randint(0, 16))
    if kind == "pair":
        if edgy:
            return edge_str(rng, 32768), edge_str(rng, 32768)
        return alnum(rng, rng.randint(0, 12)), alnum(rng, rng.randint(0, 12))
    return Raw(rng.randbytes(rng.randint(0, 8)))


def sane_props(rng: random.Random, kind: str):
    """A valid-looking property set for a packet kind (values mostly sane)."""
    props = []
    for pid in ALLOWED[kind]:
        if pid in (0x15, 0x16):  # auth method would start enhanced auth
            continue
        if rng.random() < 0.25:
            props.append((pid, prop_value(rng, pid, edgy=False)))
    if kind == "publish":
        props = [(p, v) for p, v in props if p not in (0x23, 0x01)]
    return props


def fuzz_props(rng: random.Random, kind: str):
    """(props, props_lie, description)."""
    allowed = ALLOWED[kind]
    mode = rng.choices(["edge", "dup", "foreign", "unknown", "many_user", "wrongtype", "mixed", "big_user"],
                       [3, 3, 3, 3, 1, 2, 3, 1])[0]
    props = []
    lie = None
    if mode == "edge":
        for pid in rng.sample(allowed, rng.randint(1, len(allowed))):
            props.append((pid, prop_value(rng, pid, edgy=True)))
    elif mode == "dup":
        pid = rng.choice([p for p in allowed if p not in REPEATABLE] or allowed)
        props = [(pid, prop_value(rng, pid, False)), (pid, prop_value(rng, pid, False))]
    elif mode == "foreign":
        others = [p for p in PROP if p not in allowed]
        for pid in rng.sample(others, rng.randint(1, 4)):
            props.append((pid, prop_value(rng, pid, rng.random() < 0.5)))
    elif mode == "unknown":
        pid = rng.choice([0x00, 0x04, 0x05, 0x07, 0x0A, 0x10, 0x14, 0x2B, 0x7F, 0x80, 0xFF, 16384, MAX_VARINT])
        props = [(pid, Raw(rng.randbytes(rng.randint(0, 6))))]
    elif mode == "many_user":
        n = rng.choice([100, 1000, 10000, 60000])
        props = [(0x26, (b"k%d" % i, b"v")) for i in range(n)]
    elif mode == "big_user":
        props = [(0x26, (alnum(rng, 65535), alnum(rng, 65535))) for _ in range(rng.randint(1, 7))]
    elif mode == "wrongtype":
        pid = rng.choice(allowed)
        kind_ = PROP[pid]
        truncated = {"byte": b"", "u16": b"\x01", "u32": b"\x00\x01", "varint": b"\xff\xff",
                     "str": b"\x00\x10ab", "bin": b"\xff\xff", "pair": b"\x00\x01k"}[kind_]
        props = [(pid, Raw(truncated))]
    else:  # mixed
        for _ in range(rng.randint(2, 12)):
            pid = rng.choice(list(PROP))
            props.append((pid, prop_value(rng, pid, rng.random() < 0.3)))
    if rng.random() < 0.15:
        body_len = len(b"".join(enc_prop(p, v) for p, v in props))
        lie = rng.choice([0, 1, max(0, body_len - 1), body_len + 1, body_len + 1000, MAX_VARINT, MAX_VARINT + 1])
    return props, lie, f"props:{kind}:{mode}" + (f":lie={lie}" if lie is not None else "")


def deep_json(depth: int, kind: str) -> bytes:
    if kind == "obj":
        return b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "arr":
        return b"[" * depth + b"]" * depth
    if kind == "mixed":
        return b'{"a":[' * (depth // 2) + b"0" + b"]}" * (depth // 2)
    # unbalanced: opened, never closed
    return b'{"a":' * depth


HUGE_NUMBERS = [b"1" * 10000, b"-" + b"9" * 100000, b"1e999999999", b"1E-999999999", b"0." + b"0" * 10000 + b"1",
                b"123456789012345678901234567890", b"18446744073709551616", b"-9223372036854775809",
                b"1.7976931348623157e309", b"NaN", b"Infinity", b"-0", b"01", b"1.", b".5", b"1e", b"+1",
                b"1E+2147483648", b"4.9e-325", b"9" * 400 + b".0e-400", b"-"]


def shadow_payload(rng: random.Random) -> tuple[bytes, str]:
    r = rng.random()
    wrap = lambda inner: b'{"state":{"reported":' + inner + b"}}"
    if r < 0.25:
        depth = rng.choice([8, 9, 10, 100, 10000, 10000, 100000])
        kind = rng.choice(["obj", "arr", "mixed", "open"])
        body = deep_json(depth, kind)
        return (wrap(body) if rng.random() < 0.7 else body), f"deep:{kind}:{depth}"
    if r < 0.45:
        num = rng.choice(HUGE_NUMBERS)
        where = rng.choice(["value", "version", "desired", "token"])
        if where == "value":
            return wrap(b'{"n":' + num + b"}"), "hugenum:value"
        if where == "version":
            return b'{"state":{"desired":{"x":1}},"version":' + num + b"}", "hugenum:version"
        if where == "token":
            return b'{"clientToken":' + num + b"}", "hugenum:token"
        return b'{"state":{"desired":{"n":' + num + b"}}}", "hugenum:desired"
    if r < 0.55:
        n = rng.choice([1000, 10000, 40000])
        keys = b",".join(b'"k%d":%d' % (i, i) for i in range(n))
        return wrap(b"{" + keys + b"}"), f"manykeys:{n}"
    if r < 0.6:
        size = rng.choice([65535, 65536, 65537, 70000, 200000, 1048000])
        pad = max(0, size - 40)
        return wrap(b'{"blob":"' + alnum(rng, pad) + b'"}'), f"big:{size}"
    variants = [
        (b"", "empty"), (b"{", "truncated"), (b"null", "null"), (b"[]", "array"), (b'"x"', "string"),
        (b'{"state":null}', "state-null"), (b'{"state":{"desired":null}}', "desired-null"),
        (b'{"state":{"reported":{"a":1,"a":2}}}', "dupkey"), (b'{"state":{"reported":{"s":"\\ud800"}}}', "lone-surrogate"),
        (b'{"state":{"reported":{"s":"\\u0000"}}}', "nul-escape"), (b'{"state":{"reported":{"\xff":1}}}', "bad-utf8"),
        (b"\xef\xbb\xbf{}", "bom"), (b" " * rng.choice([1000, 1000000]) + b"{}", "whitespace"),
        (b'{"clientToken":"' + alnum(rng, 65000) + b'"}', "long-token"),
        (b'{"state":{"desired":{"x":1},"reported":{"x":2}},"metadata":{"x":1}}', "metadata"),
        (b'{"state":{"desired":' + deep_json(7, "obj") + b',"reported":' + deep_json(8, "obj") + b"}}", "delta-deep"),
        (rng.randbytes(rng.randint(1, 512)), "random"),
        (b'{"state":{"reported":{"x":' + b'"' + b"\\" * 10001 + b'"}}}', "backslashes"),
    ]
    return rng.choice(variants)


# ==========================================================================================
# Scripts: what one fuzz input does, replayable
# ==========================================================================================

class Script:
    """Steps: ("s", bytes, conn) send MQTT bytes; ("w", bytes, conn) send raw bytes (below the
    WebSocket layer); ("h", bytes, conn) raw WebSocket handshake; ("r", seconds, conn) read what
    comes; ("z", seconds, conn) sleep; ("x", 0, conn) abort (RST); ("c", 0, conn) close."""

    def __init__(self, case: str, transport: str, seed: int):
        self.case = case
        self.transport = transport
        self.seed = seed
        self.mode = ""      # mtls: "plain" (no TLS) / "nocert"; ws: "" (handshake done for us)
        self.desc: list[str] = []
        self.steps: list[tuple] = []
        self.versions: dict[int, int] = {}

    def s(self, data: bytes, c: int = 0):
        self.steps.append(("s", bytes(data), c))
        return self

    def w(self, data: bytes, c: int = 0):
        self.steps.append(("w", bytes(data), c))
        return self

    def h(self, data: bytes, c: int = 0):
        self.steps.append(("h", bytes(data), c))
        return self

    def r(self, t: float = 0.3, c: int = 0):
        self.steps.append(("r", float(t), c))
        return self

    def z(self, t: float, c: int = 0):
        self.steps.append(("z", float(min(t, 3.0)), c))
        return self

    def x(self, c: int = 0):
        self.steps.append(("x", 0, c))
        return self

    def c(self, c: int = 0):
        self.steps.append(("c", 0, c))
        return self

    def size(self) -> int:
        return sum(len(a) for op, a, _ in self.steps if op in ("s", "w", "h"))

    def to_json(self) -> dict:
        return {"case": self.case, "transport": self.transport, "mode": self.mode, "seed": self.seed,
                "desc": " ".join(self.desc), "versions": self.versions,
                "steps": [[op, base64.b64encode(a).decode() if isinstance(a, bytes) else a, c] for op, a, c in self.steps]}

    @classmethod
    def from_json(cls, d: dict) -> "Script":
        s = cls(d["case"], d["transport"], d.get("seed", 0))
        s.mode = d.get("mode", "")
        s.desc = [d.get("desc", "")]
        s.versions = {int(k): v for k, v in (d.get("versions") or {}).items()}
        for op, a, c in d["steps"]:
            s.steps.append((op, base64.b64decode(a) if op in ("s", "w", "h") else a, c))
        return s


class Ctx:
    """What a case generator gets: its own RNG, the worker id, the transport."""

    def __init__(self, rng: random.Random, wid: int, n: int, transport: str, script: Script):
        self.rng, self.wid, self.n, self.transport, self.sc = rng, wid, n, transport, script
        self.k = 0

    def cid(self) -> bytes:
        self.k += 1
        return b"wf%d-%d-%d" % (self.wid, self.n, self.k)

    def shared_cid(self) -> bytes:
        return b"wf-shared-%d" % self.rng.randrange(4)

    def v(self) -> int:
        return 5 if self.rng.random() < 0.65 else 4

    def topic(self) -> bytes:
        return b"wf/%d/%d" % (self.wid, self.rng.randrange(50))

    def note(self, text: str):
        self.sc.desc.append(text)

    def connect(self, v: int, c: int = 0, read: bool = True, **kw):
        kw.setdefault("cid", self.cid())
        self.sc.s(connect_pkt(v=v, **kw), c)
        if kw.get("proto") in (None, "MQTT") and kw.get("flags") is None:
            self.sc.versions.setdefault(c, v)
        if read:
            self.sc.r(0.5, c)

    def normal_ops(self, v: int, n: int, c: int = 0, props_rate: float = 0.0):
        """A few valid operations (subscribe, publish QoS 0-2 with the handshake, ping, unsubscribe)."""
        rng = self.rng
        v5 = v >= 5
        pid = rng.randint(1, 200)
        topic = self.topic()

        def props(kind):
            if v5 and rng.random() < props_rate:
                p, lie, d = fuzz_props(rng, kind)
                self.note(d)
                return p, lie
            return (sane_props(rng, kind) if v5 and rng.random() < 0.3 else None), None

        for _ in range(n):
            op = rng.choice(["sub", "pub0", "pub1", "pub2", "ping", "unsub", "pub2"])
            pid = pid % 65535 + 1
            if op == "sub":
                p, lie = props("subscribe")
                self.sc.s(subscribe_pkt(pid, [(topic, rng.choice([0, 1, 2]))], props=p, v5=v5, props_lie=lie), c).r(0.15, c)
            elif op.startswith("pub"):
                qos = int(op[-1])
                p, lie = props("publish")
                self.sc.s(publish_pkt(topic, alnum(rng, rng.randint(0, 64)), qos=qos, pid=pid, props=p, v5=v5,
                                      props_lie=lie), c)
                if qos == 2:
                    self.sc.r(0.1, c).s(ack_pkt(PUBREL, pid, v5=v5), c)
                # acknowledge what the server might deliver to us (ids start at 1)
                if rng.random() < 0.5:
                    self.sc.r(0.1, c).s(ack_pkt(rng.choice([PUBACK, PUBREC, PUBCOMP]), rng.randint(1, 4), v5=v5), c)
            elif op == "ping":
                self.sc.s(PINGREQ_PKT, c)
            else:
                self.sc.s(unsubscribe_pkt(pid, [topic], v5=v5), c)
        self.sc.r(0.2, c)

    def end(self, v: int, c: int = 0):
        rng = self.rng
        r = rng.random()
        if r < 0.55:
            if v >= 5 and rng.random() < 0.4:
                self.sc.s(disconnect_pkt(rng.choice([0, 0x04, 0x80, 0x8E, 0x95]),
                                         sane_props(rng, "disconnect") if rng.random() < 0.5 else None), c)
            else:
                self.sc.s(disconnect_pkt(v5=v >= 5), c)
            self.sc.r(0.1, c)
        elif r < 0.8:
            self.sc.c(c)
        else:
            self.sc.x(c)


# ---------------------------------------------------------------- the cases

def case_connect_fields(x: Ctx):
    rng, v = x.rng, x.v()
    kw: dict = {"cid": x.cid(), "clean": True}
    m = rng.choice(["cid", "cid", "cid_empty_persistent", "proto", "level", "flags", "keepalive", "props", "props",
                    "props_edge", "will", "will", "userpass", "auth"])
    x.note(f"connect:{m}:v{v}")
    if m == "cid":
        kw["cid"] = edge_str(rng)
    elif m == "cid_empty_persistent":
        kw.update(cid=b"", clean=False)
        if v >= 5:
            kw["props"] = [(0x11, rng.choice([0, 5, 0xFFFFFFFF]))]
    elif m == "proto":
        kw["proto"] = rng.choice([b"mqtt", b"MQIsdp", b"", b"MQTT\x00", alnum(rng, 65535), b"\xff\xff", b"MQTTT"])
    elif m == "level":
        v = rng.choice([0, 1, 2, 3, 6, 7, 255])
        kw["v5_shape"] = rng.random() < 0.5
    elif m == "flags":
        base = 0x02
        kw["flags"] = rng.choice([base | 0x01, base | 0x18, base | 0x20, base | 0x08, base | 0x40, 0xFF, 0x00 | 0x01,
                                  base | 0x80, base | 0xC0])
    elif m == "keepalive":
        kw["keepalive"] = rng.choice([0, 1, 2, 65535])
    elif m == "props" and v >= 5:
        kw["props"], kw["props_lie"], d = fuzz_props(rng, "connect")
        x.note(d)
    elif m == "props_edge" and v >= 5:
        kw["props"] = rng.choice([[(0x21, 0)], [(0x27, 0)], [(0x27, 1)], [(0x22, 65535)], [(0x11, 0xFFFFFFFF)],
                                  [(0x17, 2)], [(0x19, 2)], [(0x21, 1), (0x22, 0)], [(0x27, 20)], [(0x21, 65535)],
                                  [(0x11, 1), (0x11, 2)], [(0x16, b"data-without-method")]])
    elif m == "will":
        will = {"topic": rng.choice([x.topic(), edge_topic(rng), alnum(rng, 65535)]),
                "payload": rng.choice([b"", b"bye", alnum(rng, 65535), rng.choice(BAD_UTF8)]),
                "qos": rng.choice([0, 1, 2, 2, 3]), "retain": rng.random() < 0.3}
        if v >= 5 and rng.random() < 0.7:
            if rng.random() < 0.5:
                will["props"], will["props_lie"], d = fuzz_props(rng, "will")
                x.note(d)
            else:
                will["props"] = rng.choice([[(0x18, 0xFFFFFFFF)], [(0x18, 1)], [(0x01, 1)], [(0x08, b"a/#")],
                                            [(0x09, rng.randbytes(65535))], [(0x02, 0)], [(0x23, 1)], [(0x03, alnum(rng, 65535))]])
        kw["will"] = will
        if rng.random() < 0.5 and v >= 5:
            kw["props"] = [(0x11, rng.choice([0, 2, 10]))]
    elif m == "userpass":
        kw["user"] = edge_str(rng) if rng.random() < 0.7 else None
        kw["pw"] = rng.choice([b"", alnum(rng, 65535), rng.randbytes(100)])
    elif m == "auth" and v >= 5:
        kw["props"] = [(0x15, rng.choice([b"SCRAM-SHA-1", b"", alnum(rng, 65535)]))] + \
            ([(0x16, rng.randbytes(rng.choice([0, 32, 65535])))] if rng.random() < 0.6 else [])
    x.connect(v, **kw)
    if rng.random() < 0.7:
        x.normal_ops(max(v, 4) if v in (4, 5) else 4, rng.randint(1, 5))
    if m == "will" and rng.random() < 0.5:
        x.sc.x()  # unclean: the will fires
    else:
        x.end(v if v in (4, 5) else 4)


def case_length_lies(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    m = rng.choice(["rl_plus", "rl_minus", "rl_nonminimal", "rl_5bytes", "rl_max", "topic_len", "cid_len",
                    "props_len", "filter_len", "userprop_len", "rl_max_connect", "rl_huge_then_stream"])
    x.note(f"lies:{m}:v{v}")
    if m in ("cid_len", "rl_max_connect"):
        cid = x.cid()
        if m == "cid_len":
            x.sc.s(connect_pkt(cid=cid, v=v, cid_lie=rng.choice([0, 1, len(cid) - 1, len(cid) + 1, 0xFFFF])))
        else:
            body = connect_pkt(cid=cid, v=v)[2:]
            x.sc.s(pkt(CONNECT, 0, body, rl=rng.choice([MAX_VARINT, len(body) + 1, len(body) - 1, 0])))
        x.sc.r(0.5)
        x.normal_ops(v, 2)
        x.end(v)
        return
    x.connect(v)
    topic = x.topic()
    pid = rng.randint(1, 65535)
    if m.startswith("rl_"):
        inner = rng.choice([
            publish_pkt(topic, b"payload", qos=rng.choice([0, 1, 2]), pid=pid, v5=v5),
            subscribe_pkt(pid, [(topic, 1)], v5=v5), unsubscribe_pkt(pid, [topic], v5=v5),
            ack_pkt(PUBACK, pid, v5=v5), PINGREQ_PKT, disconnect_pkt(0, [], v5=v5),
        ])
        first, body = inner[0], parse_frames(inner)[0][0][1]
        ptype, flags = first >> 4, first & 0xF
        if m == "rl_plus":
            data = pkt(ptype, flags, body, rl=len(body) + rng.choice([1, 2, 100, 65536]))
        elif m == "rl_minus":
            data = pkt(ptype, flags, body, rl=max(0, len(body) - rng.choice([1, 2, 3, len(body)])))
        elif m == "rl_nonminimal":
            data = pkt(ptype, flags, body, rl_bytes=rng.choice([2, 3, 4]))
        elif m == "rl_5bytes":
            data = bytes([first]) + varint_raw(len(body), 5) + body
        elif m == "rl_max":
            data = bytes([first]) + varint(MAX_VARINT) + body
        else:  # rl_huge_then_stream: claim a large packet and really stream part of it
            claim = rng.choice([1048577, 2 * 1048576, MAX_VARINT])
            data = bytes([first]) + varint(claim) + body + b"\x00" * rng.choice([1000, 100000, 1100000])
        x.sc.s(data).r(0.5)
    elif m == "topic_len":
        lie = rng.choice([0, 1, len(topic) - 1, len(topic) + 1, len(topic) + 5, 0xFFFF])
        x.sc.s(publish_pkt(topic, b"payload!", qos=rng.choice([0, 1]), pid=pid, v5=v5, topic_lie=lie)).r(0.3)
    elif m == "props_len" and v5:
        props = [(0x26, (b"k", b"v")), (0x02, 30)]
        real = len(enc_props(props)) - 1
        lie = rng.choice([0, 1, real - 1, real + 1, real + 3, 200, MAX_VARINT])
        which = rng.choice(["pub", "sub", "ack", "disc", "unsub"])
        if which == "pub":
            x.sc.s(publish_pkt(topic, b"abc", qos=1, pid=pid, props=props, props_lie=lie))
        elif which == "sub":
            x.sc.s(subscribe_pkt(pid, [(topic, 1)], props=props, props_lie=lie))
        elif which == "ack":
            x.sc.s(pkt(PUBACK, 0, u16(pid) + u8(0) + enc_props(props, lie)))
        elif which == "unsub":
            x.sc.s(pkt(UNSUBSCRIBE, 2, u16(pid) + enc_props(props, lie) + mstr(topic)))
        else:
            x.sc.s(pkt(DISCONNECT, 0, u8(0) + enc_props(props, lie)))
        x.sc.r(0.3)
    elif m == "filter_len":
        flt = rng.choice([topic, b"a/+/b", SHARE_LONG])
        lie = rng.choice([0, 1, len(flt) - 1, len(flt) + 1, len(flt) + 2, 0xFFFF])
        x.sc.s(subscribe_pkt(pid, [(flt, 1), (topic, 0)], v5=v5, lies={0: lie})).r(0.3)
    elif m == "userprop_len" and v5:
        k, val = alnum(x.rng, 10), alnum(x.rng, 10)
        raw = Raw(mstr(k, rng.choice([0, 9, 11, 0xFFFF])) + mstr(val))
        x.sc.s(publish_pkt(topic, b"p", qos=1, pid=pid, props=[(0x26, raw)])).r(0.3)
    else:
        x.sc.s(publish_pkt(topic, b"x", v5=v5, topic_lie=0xFFFF)).r(0.3)
    x.normal_ops(v, rng.randint(0, 2))
    x.end(v)


def case_publish_fields(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    cprops = [(0x22, rng.choice([0, 10, 65535]))] if v5 and rng.random() < 0.5 else None
    x.connect(v, props=cprops)
    own = x.topic()
    if rng.random() < 0.6:
        x.sc.s(subscribe_pkt(1, [(own, rng.choice([0, 1, 2]))], v5=v5)).r(0.2)
    for _ in range(rng.randint(1, 5)):
        m = rng.choice(["topic", "topic", "alias", "qos_flags", "pid0", "payload", "props", "props", "props_edge",
                        "retain_dollar"])
        x.note(f"publish:{m}:v{v}")
        pid = rng.randint(1, 65535)
        qos = rng.choice([0, 1, 2])
        if m == "topic":
            x.sc.s(publish_pkt(edge_topic(rng), b"payload", qos=qos, pid=pid, v5=v5))
        elif m == "alias" and v5:
            seq = rng.choice(["zero", "max", "over", "unset", "set_then_use", "rebind"])
            x.note(f"alias:{seq}")
            if seq == "zero":
                x.sc.s(publish_pkt(own, b"a0", props=[(0x23, 0)]))
            elif seq == "max":
                x.sc.s(publish_pkt(own, b"amax", props=[(0x23, 65535)]))
            elif seq == "over":
                x.sc.s(publish_pkt(own, b"aover", props=[(0x23, 65)]))
            elif seq == "unset":
                x.sc.s(publish_pkt(b"", b"unset", qos=qos, pid=pid, props=[(0x23, rng.randint(1, 64))]))
            elif seq == "set_then_use":
                a = rng.randint(1, 64)
                x.sc.s(publish_pkt(own, b"set", props=[(0x23, a)])).s(publish_pkt(b"", b"use", qos=qos, pid=pid, props=[(0x23, a)]))
            else:
                a = rng.randint(1, 64)
                x.sc.s(publish_pkt(own, b"1", props=[(0x23, a)])).s(publish_pkt(x.topic(), b"2", props=[(0x23, a)]))
                x.sc.s(publish_pkt(b"", b"3", props=[(0x23, a), (0x23, a)]))
        elif m == "qos_flags":
            f = rng.choice([0x06, 0x07, 0x0E, 0x08, 0x09, 0x0F])
            x.sc.s(publish_pkt(own, b"flags", pid=pid, v5=v5, flags=f))
        elif m == "pid0":
            x.sc.s(publish_pkt(own, b"pid0", qos=rng.choice([1, 2]), pid=0, v5=v5))
        elif m == "payload":
            size = rng.choice([0, 1, 65535, 65536, 1048576 - 200, 1048576 - 20, 1048577])
            x.sc.s(publish_pkt(own, alnum(rng, size), qos=qos, pid=pid, v5=v5))
        elif m == "props" and v5:
            props, lie, d = fuzz_props(rng, "publish")
            x.note(d)
            x.sc.s(publish_pkt(own, b"props", qos=qos, pid=pid, props=props, props_lie=lie))
        elif m == "props_edge" and v5:
            props, payload = rng.choice([
                ([(0x01, 1)], rng.choice(BAD_UTF8)), ([(0x01, 2)], b"x"), ([(0x02, 0)], b"x"), ([(0x02, 0xFFFFFFFF)], b"x"),
                ([(0x08, b"a/#")], b"x"), ([(0x08, b"")], b"x"), ([(0x09, rng.randbytes(65535))], b"x"),
                ([(0x0B, 1)], b"x"), ([(0x0B, 0)], b"x"), ([(0x01, 0), (0x01, 1)], b"x"), ([(0x03, b"\xff")], b"x"),
                ([(0x02, 1), (0x02, 2)], b"x"), ([(0x03, alnum(rng, 65535))], b"x"),
            ])
            x.sc.s(publish_pkt(own, payload, qos=qos, pid=pid, props=props))
        elif m == "retain_dollar":
            x.sc.s(publish_pkt(rng.choice([b"$SYS/wf", own, b"$aws/things/wf/shadow/update/accepted"]), b"r",
                               qos=qos, pid=pid, retain=True, v5=v5))
        else:
            x.sc.s(publish_pkt(own, b"x", qos=qos, pid=pid, v5=v5))
        x.sc.r(0.2)
        if qos == 2:
            x.sc.s(ack_pkt(PUBREL, pid, v5=v5))
    x.end(v)


def case_subscribe_fields(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    x.connect(v)
    own = x.topic()
    for _ in range(rng.randint(1, 3)):
        m = rng.choice(["filter", "filter", "share_long", "options", "many", "pid0", "flags", "subid", "props", "unsub"])
        x.note(f"subscribe:{m}:v{v}")
        pid = rng.randint(1, 65535)
        if m == "filter":
            x.sc.s(subscribe_pkt(pid, [(edge_filter(rng), rng.choice([0, 1, 2]))], v5=v5))
        elif m == "share_long":
            flt = rng.choice([SHARE_LONG, b"$share/g/" + own, b"$share/" + alnum(rng, 30000) + b"/" + own])
            x.sc.s(subscribe_pkt(pid, [(flt, rng.choice([0, 1, 2, 0x04]))], v5=v5)).r(0.2)
            x.sc.s(publish_pkt(b"f" * 65500 if flt == SHARE_LONG else own, b"to-shared", qos=1, pid=pid, v5=v5))
        elif m == "options":
            opts = rng.choice([3, 0xC0, 0x30, 0x34, 0x04, 0x08, 0x2E, 0xFF, 0x40])
            flt = rng.choice([own, b"$share/g/" + own])
            x.sc.s(subscribe_pkt(pid, [(flt, opts)], v5=v5))
        elif m == "many":
            n = rng.choice([50, 500, 5000, 20000])
            x.sc.s(subscribe_pkt(pid, [(b"wf/%d/m/%d" % (x.wid, i), i % 3) for i in range(n)], v5=v5))
        elif m == "pid0":
            x.sc.s(subscribe_pkt(0, [(own, 1)], v5=v5))
        elif m == "flags":
            x.sc.s(subscribe_pkt(pid, [(own, 1)], v5=v5, flags=rng.choice([0, 1, 3, 0xF])))
        elif m == "subid" and v5:
            props = rng.choice([[(0x0B, 0)], [(0x0B, MAX_VARINT)], [(0x0B, 1), (0x0B, 2)], [(0x0B, MAX_VARINT + 1)],
                                [(0x0B, 16384)]])
            x.sc.s(subscribe_pkt(pid, [(own, 1), (own + b"/#", 2)], props=props)).r(0.2)
            x.sc.s(publish_pkt(own, b"with-subid", qos=1, pid=pid))
        elif m == "props" and v5:
            props, lie, d = fuzz_props(rng, "subscribe")
            x.note(d)
            x.sc.s(subscribe_pkt(pid, [(own, 1)], props=props, props_lie=lie))
        else:
            filters = rng.choice([[], [own], [SHARE_LONG], [edge_filter(rng)], [own] * 1000])
            x.sc.s(unsubscribe_pkt(pid if rng.random() < 0.9 else 0, filters, v5=v5,
                                   flags=2 if rng.random() < 0.9 else 0))
        x.sc.r(0.3)
    x.normal_ops(v, rng.randint(0, 3))
    x.end(v)


def case_props(x: Ctx):
    """A valid session in which the properties of any packet are fuzzed."""
    rng = x.rng
    props, lie, d = fuzz_props(rng, "connect")
    x.note(d)
    x.connect(5, props=props if rng.random() < 0.4 else sane_props(rng, "connect"), props_lie=lie if rng.random() < 0.3 else None)
    x.normal_ops(5, rng.randint(2, 6), props_rate=0.7)
    kind = rng.choice(["ack", "disconnect", "auth", "unsubscribe"])
    props, lie, d = fuzz_props(rng, kind)
    x.note(d)
    if kind == "ack":
        x.sc.s(pkt(rng.choice([PUBACK, PUBREC, PUBCOMP]), 0, u16(1) + u8(0) + enc_props(props, lie)))
    elif kind == "disconnect":
        x.sc.s(pkt(DISCONNECT, 0, u8(0) + enc_props(props, lie)))
    elif kind == "auth":
        x.sc.s(pkt(AUTH, 0, u8(rng.choice([0, 0x18, 0x19])) + enc_props(props, lie)))
    else:
        x.sc.s(pkt(UNSUBSCRIBE, 2, u16(7) + enc_props(props, lie) + mstr(x.topic())))
    x.sc.r(0.3)
    x.end(5)


def case_packet_order(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    m = rng.choice(["pubrel_first", "unknown_acks", "server_types", "second_connect", "auth", "reserved0",
                    "disconnect_expiry", "no_connect", "ping_flood", "pubrel_flags", "after_disconnect",
                    "pubrec_for_inbound", "suback_storm"])
    x.note(f"order:{m}:v{v}")
    if m == "no_connect":
        x.sc.s(rng.choice([publish_pkt(x.topic(), b"x", v5=v5), subscribe_pkt(1, [(x.topic(), 0)], v5=v5),
                           PINGREQ_PKT, disconnect_pkt(), ack_pkt(PUBREL, 1), auth_pkt()])).r(0.5)
        x.sc.s(connect_pkt(cid=x.cid(), v=v)).r(0.3)
        return
    connect_props = [(0x11, 0)] if m == "disconnect_expiry" and v5 else None
    x.connect(v, props=connect_props)
    pid = rng.randint(1, 65535)
    if m == "pubrel_first":
        x.sc.s(ack_pkt(PUBREL, pid, v5=v5)).r(0.2).s(publish_pkt(x.topic(), b"late", qos=2, pid=pid, v5=v5)).r(0.2)
        x.sc.s(ack_pkt(PUBREL, pid, v5=v5)).s(ack_pkt(PUBREL, pid, v5=v5))
    elif m == "unknown_acks":
        for t in rng.sample([PUBACK, PUBREC, PUBREL, PUBCOMP], 4):
            x.sc.s(ack_pkt(t, rng.randint(0, 65535), reason=rng.choice([None, 0, 0x10, 0x80, 0x92, 0xFF]), v5=v5))
    elif m == "server_types":
        t = rng.choice([CONNACK, SUBACK, UNSUBACK, PINGRESP])
        body = {CONNACK: b"\x00\x00" + (b"\x00" if v5 else b""), SUBACK: u16(pid) + (b"\x00" if v5 else b"") + b"\x01",
                UNSUBACK: u16(pid) + (b"\x00" if v5 else b""), PINGRESP: b""}[t]
        x.sc.s(pkt(t, 0, body))
    elif m == "second_connect":
        x.sc.s(connect_pkt(cid=rng.choice([x.cid(), b"wf-other"]), v=rng.choice([4, 5])))
    elif m == "auth":
        x.sc.s(rng.choice([auth_pkt(0x18, [(0x15, b"SCRAM-SHA-1")]), auth_pkt(0x00), pkt(AUTH, 0, b""),
                           auth_pkt(0x19, [(0x16, b"x")]), pkt(AUTH, 1, b"\x18\x00")]))
    elif m == "reserved0":
        x.sc.s(bytes([rng.choice([0x00, 0x0F, 0x01])]) + b"\x00")
    elif m == "disconnect_expiry" and v5:
        x.sc.s(disconnect_pkt(0, [(0x11, rng.choice([1, 0xFFFFFFFF]))]))
    elif m == "ping_flood":
        x.sc.s(PINGREQ_PKT * rng.choice([100, 1000, 10000]))
    elif m == "pubrel_flags":
        x.sc.s(publish_pkt(x.topic(), b"q2", qos=2, pid=pid, v5=v5)).r(0.1)
        x.sc.s(ack_pkt(PUBREL, pid, v5=v5, flags=rng.choice([0, 1, 3, 0xF])))
    elif m == "after_disconnect":
        x.sc.s(disconnect_pkt(v5=v5) + publish_pkt(x.topic(), b"after", qos=1, pid=pid, v5=v5) + PINGREQ_PKT)
    elif m == "pubrec_for_inbound":
        x.sc.s(publish_pkt(x.topic(), b"q2", qos=2, pid=pid, v5=v5)).s(ack_pkt(PUBREC, pid, v5=v5))
        x.sc.s(ack_pkt(PUBCOMP, pid, v5=v5)).s(ack_pkt(PUBACK, pid, v5=v5))
    elif m == "suback_storm":
        x.sc.s(b"".join(subscribe_pkt(i + 1, [(x.topic(), 2)], v5=v5) for i in range(500)))
        x.sc.s(b"".join(unsubscribe_pkt(i + 1, [x.topic()], v5=v5) for i in range(500)))
    x.sc.r(0.4)
    x.end(v)


def case_qos_flows(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    m = rng.choice(["cut_before_pubrel", "never_pubrel", "dup_ids", "outbound_unacked", "resume_session",
                    "recv_max_1", "wrong_ack_reasons", "dup_flag_resend", "resume_pipelined"])
    x.note(f"qos:{m}:v{v}")
    cid = x.cid() if rng.random() < 0.7 else x.shared_cid()
    persistent = dict(clean=False, props=[(0x11, rng.choice([5, 30]))] if v5 else None)
    topic = x.topic()
    if m == "cut_before_pubrel":
        pid = rng.randint(1, 65535)
        x.connect(v, cid=cid, **persistent)
        x.sc.s(publish_pkt(topic, b"exactly-once?", qos=2, pid=pid, v5=v5)).r(0.2).x()
        x.connect(v, c=1, cid=cid, **persistent)
        if rng.random() < 0.5:
            x.sc.s(publish_pkt(topic, b"exactly-once?", qos=2, pid=pid, dup=True, v5=v5), 1).r(0.2, 1)
        x.sc.s(ack_pkt(PUBREL, pid, v5=v5), 1).r(0.2, 1)
        x.end(v, 1)
        return
    if m == "resume_pipelined":
        # A persistent session left with an unacknowledged QoS 1/2 delivery, resumed by a CONNECT
        # with the next packet right behind it: the CONNACK must still come first [MQTT-3.2.0-1].
        cid = x.cid()
        x.connect(v, cid=cid, **persistent)
        x.sc.s(subscribe_pkt(1, [(topic, rng.choice([1, 2]))], v5=v5)).r(0.2)
        x.sc.s(publish_pkt(topic, b"left-unacked", qos=rng.choice([1, 2]), pid=2, v5=v5)).r(0.3)
        x.sc.x() if rng.random() < 0.7 else None
        follow = rng.choice([subscribe_pkt(7, [(topic + b"/more", 1)], v5=v5), PINGREQ_PKT,
                             publish_pkt(topic + b"/x", b"p", qos=1, pid=9, v5=v5), unsubscribe_pkt(8, [topic], v5=v5)])
        x.sc.s(connect_pkt(cid=cid, v=v, **persistent) + follow, 1)
        x.sc.versions.setdefault(1, v)
        x.sc.r(0.6, 1)
        x.end(v, 1)
        return
    if m == "never_pubrel":
        x.connect(v, cid=cid)
        n = rng.choice([10, 99, 100, 101, 150, 400])
        x.sc.s(b"".join(publish_pkt(topic, b"q2-%d" % i, qos=2, pid=i + 1, v5=v5) for i in range(n))).r(0.5)
    elif m == "dup_ids":
        x.connect(v, cid=cid)
        pid = rng.randint(1, 65535)
        seq = [publish_pkt(topic, b"a", qos=1, pid=pid, v5=v5), publish_pkt(topic, b"b", qos=2, pid=pid, v5=v5),
               publish_pkt(topic, b"c", qos=2, pid=pid, v5=v5), subscribe_pkt(pid, [(topic, 2)], v5=v5),
               unsubscribe_pkt(pid, [topic], v5=v5), ack_pkt(PUBREL, pid, v5=v5), publish_pkt(topic, b"d", qos=1, pid=pid, v5=v5)]
        rng.shuffle(seq)
        x.sc.s(b"".join(seq)).r(0.4)
    elif m == "outbound_unacked":
        x.connect(v, cid=cid, **({"props": [(0x21, rng.choice([1, 2, 65535]))]} if v5 else {}))
        x.sc.s(subscribe_pkt(1, [(topic, 2), (topic + b"/1", 1)], v5=v5)).r(0.2)
        x.sc.s(b"".join(publish_pkt(topic if i % 2 else topic + b"/1", b"m%d" % i, qos=1 + i % 2, pid=i + 10, v5=v5)
                        for i in range(rng.choice([5, 50, 300]))))
        x.sc.r(0.5)
        # acknowledge some, wrongly, out of order
        x.sc.s(b"".join(ack_pkt(rng.choice([PUBACK, PUBREC, PUBCOMP, PUBREL]), rng.randint(1, 8), v5=v5) for _ in range(8)))
        x.sc.r(0.2)
    elif m == "resume_session":
        x.connect(v, cid=cid, **persistent)
        x.sc.s(subscribe_pkt(1, [(topic, 2)], v5=v5)).r(0.2)
        x.sc.s(publish_pkt(topic, b"to-me", qos=2, pid=5, v5=v5)).r(0.2).s(ack_pkt(PUBREL, 5, v5=v5)).r(0.3).x()
        x.connect(v, c=1, cid=cid, **persistent)
        x.sc.s(ack_pkt(PUBREC, 1, v5=v5), 1).r(0.2, 1).s(ack_pkt(PUBCOMP, 1, v5=v5), 1).s(ack_pkt(PUBACK, 1, v5=v5), 1)
        x.end(v, 1)
        return
    elif m == "recv_max_1" and v5:
        x.connect(5, cid=cid, props=[(0x21, 1), (0x27, rng.choice([64, 128, 1024]))])
        x.sc.s(subscribe_pkt(1, [(topic, 1)])).r(0.2)
        x.sc.s(b"".join(publish_pkt(topic, alnum(rng, rng.choice([10, 200, 2000])), qos=1, pid=i + 2) for i in range(30)))
        x.sc.r(0.5)
    elif m == "wrong_ack_reasons" and v5:
        x.connect(5, cid=cid)
        x.sc.s(subscribe_pkt(1, [(topic, 2)])).r(0.2).s(publish_pkt(topic, b"x", qos=2, pid=9)).r(0.3)
        x.sc.s(ack_pkt(PUBREC, 1, reason=rng.choice([0x80, 0x92, 0x10, 0xFF]), props=[(0x1F, alnum(rng, 65000))]))
        x.sc.s(ack_pkt(PUBREL, 9, reason=rng.choice([0x92, 0x01, 0xFF])))
    else:
        x.connect(v, cid=cid)
        pid = rng.randint(1, 65535)
        for _ in range(rng.randint(2, 20)):
            x.sc.s(publish_pkt(topic, b"again", qos=rng.choice([1, 2]), pid=pid, dup=True, v5=v5))
        x.sc.r(0.3)
    x.end(v)


def valid_session_packets(x: Ctx, v: int) -> list[bytes]:
    """A valid session as a list of packets, for byte-level mutation."""
    rng = x.rng
    v5 = v >= 5
    out = [connect_pkt(cid=x.cid(), v=v, props=sane_props(rng, "connect") if v5 else None,
                       will={"topic": x.topic(), "payload": b"w", "qos": 1, "props": sane_props(rng, "will") if v5 else None}
                       if rng.random() < 0.3 else None)]
    topic = x.topic()
    for i in range(rng.randint(1, 8)):
        pid = i + 1
        k = rng.choice(["sub", "pub", "pub", "unsub", "ping", "pubrel", "shadow"])
        if k == "sub":
            out.append(subscribe_pkt(pid, [(topic, rng.randint(0, 2)), (b"$share/g/" + topic, 1)],
                                     props=sane_props(rng, "subscribe") if v5 else None, v5=v5))
        elif k == "pub":
            out.append(publish_pkt(topic, alnum(rng, rng.randint(0, 100)), qos=rng.randint(0, 2), pid=pid,
                                   retain=rng.random() < 0.1, props=sane_props(rng, "publish") if v5 else None, v5=v5))
        elif k == "unsub":
            out.append(unsubscribe_pkt(pid, [topic], v5=v5))
        elif k == "ping":
            out.append(PINGREQ_PKT)
        elif k == "pubrel":
            out.append(ack_pkt(PUBREL, pid, v5=v5))
        else:
            out.append(publish_pkt(b"$aws/things/wf%d/shadow/update" % x.wid, b'{"state":{"reported":{"t":1}}}', qos=1,
                                   pid=pid, v5=v5))
    out.append(disconnect_pkt(v5=v5))
    return out


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    if not b:
        return bytes(rng.randbytes(4)), "empty->random"
    m = rng.choice(["bitflip", "bitflip", "byte", "truncate", "insert", "delete", "dup", "overwrite", "header"])
    if m == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif m == "byte":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x3F])
    elif m == "truncate":
        del b[rng.randrange(len(b)):]
    elif m == "insert":
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.randbytes(rng.randint(1, 64))
    elif m == "delete":
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 16)]
    elif m == "dup":
        i = rng.randrange(len(b))
        j = min(len(b), i + rng.randint(1, 64))
        b[j:j] = b[i:j]
    elif m == "overwrite":
        i = rng.randrange(len(b))
        n = min(len(b) - i, rng.randint(1, 32))
        b[i:i + n] = rng.randbytes(n)
    else:  # the fixed header: type, flags, remaining length bytes
        b[0] = rng.randrange(256) if rng.random() < 0.5 else (b[0] & 0xF0) | rng.randrange(16)
        if len(b) > 1 and rng.random() < 0.5:
            b[1] = rng.randrange(256)
    return bytes(b), m


def case_byte_mutation(x: Ctx):
    rng, v = x.rng, x.v()
    pkts = valid_session_packets(x, v)
    if rng.random() < 0.25:
        stream, how = mutate_bytes(rng, b"".join(pkts))
        x.note(f"mutate:stream:{how}:v{v}")
        x.sc.s(stream).r(0.5)
        return
    targets = list(range(1, len(pkts))) if rng.random() < 0.75 else [0]
    for _ in range(rng.randint(1, 2)):
        i = rng.choice(targets)
        pkts[i], how = mutate_bytes(rng, pkts[i])
        x.note(f"mutate:pkt{i}:{how}:v{v}")
    for i, p in enumerate(pkts):
        x.sc.s(p)
        if i == 0 or rng.random() < 0.3:
            x.sc.r(0.2)
    x.sc.r(0.3)


def case_random_bytes(x: Ctx):
    rng = x.rng
    m = rng.choice(["random", "connect_type", "after_connect", "ff", "http", "tls_hello", "zeros"])
    x.note(f"random:{m}")
    if m == "random":
        x.sc.s(rng.randbytes(rng.randint(1, 4096)))
    elif m == "connect_type":
        x.sc.s(b"\x10" + rng.randbytes(rng.randint(1, 300)))
    elif m == "after_connect":
        x.connect(x.v())
        x.sc.s(rng.randbytes(rng.randint(1, 4096)))
    elif m == "ff":
        x.sc.s(b"\xff" * rng.choice([2, 5, 100, 65536]))
    elif m == "http":
        x.sc.s(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wirefuzz\r\n\r\n")
    elif m == "tls_hello":
        x.sc.s(bytes.fromhex("16030100c4010000c00303") + rng.randbytes(200))
    else:
        x.sc.s(b"\x00" * rng.choice([2, 3, 1000]))
    x.sc.r(0.4)


SHADOW_OPS = [b"get", b"update", b"update", b"update", b"delete"]


def case_shadow(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    x.connect(v)
    prefix_len = len(b"$aws/things/") + len(b"/shadow/name//update")
    thing = rng.choice([b"wf-%d-%d" % (x.wid, rng.randrange(20)), alnum(rng, 128), alnum(rng, 129), alnum(rng, 1024),
                        alnum(rng, 65535 - prefix_len - 70), b"fuzz:thing_-x", "é".encode() * 64, b"bad\xff", b"",
                        b"wf-%d" % x.wid])
    named = rng.random() < 0.4
    name = b""
    if named:
        name = rng.choice([alnum(rng, 64), alnum(rng, 65), alnum(rng, max(1, 65535 - prefix_len - len(thing) - 5)), b"",
                           b"a/b", b"$x", b"classic", b"cfg"])
    base = b"$aws/things/" + thing + b"/shadow" + (b"/name/" + name if named else b"")
    if len(base) + 16 > 65535:
        base = base[:65535 - 16]
    x.note(f"shadow:thing={len(thing)}:name={len(name) if named else '-'}:v{v}")
    if rng.random() < 0.7:
        flt = rng.choice([base + b"/#", b"$aws/things/+/shadow/#", base + b"/+/accepted", base + b"/update/delta"])
        x.sc.s(subscribe_pkt(1, [(flt, rng.choice([0, 1]))], v5=v5)).r(0.2)
    for i in range(rng.randint(1, 4)):
        op = rng.choice(SHADOW_OPS)
        if rng.random() < 0.1:
            op = rng.choice([b"update/accepted", b"update/delta", b"get/rejected", b"update/documents", b"",
                             b"update/x", b"GET"])
        payload, d = shadow_payload(rng) if op != b"get" or rng.random() < 0.3 else (b'{"clientToken":"t%d"}' % i, "get")
        x.note(f"{op.decode()}:{d}")
        qos = rng.choice([0, 1, 1, 2])
        pid = i + 2
        x.sc.s(publish_pkt(base + b"/" + op, payload, qos=qos, pid=pid, v5=v5))
        x.sc.r(0.3)
        if qos == 2:
            x.sc.s(ack_pkt(PUBREL, pid, v5=v5))
    x.sc.r(0.5)
    x.end(v)


def case_takeover(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    cid = x.shared_cid()
    x.note(f"takeover:{cid.decode()}:v{v}")
    for c in range(rng.randint(1, 3)):
        will = {"topic": x.topic(), "payload": b"will-%d" % c, "qos": rng.choice([0, 1, 2]), "retain": rng.random() < 0.2,
                "props": [(0x18, rng.choice([0, 1, 2]))] if v5 else None}
        props = [(0x11, rng.choice([0, 3, 30]))] if v5 else None
        x.connect(v, c=c, cid=cid, clean=rng.random() < 0.5, will=will if rng.random() < 0.6 else None, props=props)
        if rng.random() < 0.7:
            x.sc.s(subscribe_pkt(1, [(b"wf/+/takeover", 1)], v5=v5), c)
            x.sc.s(publish_pkt(b"wf/%d/takeover" % x.wid, b"t", qos=rng.choice([0, 1, 2]), pid=c + 1, v5=v5), c)
        x.sc.r(0.1, c)
    for c in range(3):
        if rng.random() < 0.5:
            x.sc.x(c)
    x.sc.r(0.3)


def case_big_strings(x: Ctx):
    """The MQTT maxima: 65535-byte client ids, topics, filters, will topics, user properties..."""
    rng, v = x.rng, x.v()
    v5 = v >= 5
    big = lambda: alnum(rng, 65535)
    m = rng.choice(["cid", "topic", "share_filter", "filter", "will_topic", "user_props", "auth_method", "response_topic",
                    "reason_string", "userpass", "content_type", "unsub_filter"])
    x.note(f"big:{m}:v{v}")
    if m == "cid":
        x.connect(v, cid=big())
        x.normal_ops(v, 3)
    elif m == "will_topic":
        x.connect(v, will={"topic": b"w/" + alnum(rng, 65533), "payload": big(), "qos": 1}, props=[(0x11, 0)] if v5 else None)
        x.sc.x()
        return
    elif m == "userpass":
        x.connect(v, user=big(), pw=big())
    elif m == "auth_method" and v5:
        x.connect(5, props=[(0x15, big()), (0x16, rng.randbytes(65535))])
    else:
        x.connect(v)
    pid = rng.randint(1, 65535)
    if m == "topic":
        t = b"wf/" + alnum(rng, 65532)
        x.sc.s(subscribe_pkt(pid, [(t, 1)], v5=v5)).r(0.2).s(publish_pkt(t, b"long", qos=1, pid=pid, v5=v5))
    elif m == "share_filter":
        x.sc.s(subscribe_pkt(pid, [(SHARE_LONG, 1)], v5=v5)).r(0.2).s(publish_pkt(b"f" * 65500, b"s", qos=1, pid=pid, v5=v5))
        x.sc.r(0.2).s(unsubscribe_pkt(pid, [SHARE_LONG], v5=v5))
    elif m == "filter":
        flt = rng.choice([alnum(rng, 65534) + b"#", b"+/" * 32767 + b"#", b"a/" * 32767 + b"+"])
        x.sc.s(subscribe_pkt(pid, [(flt, 2)], v5=v5)).r(0.2).s(publish_pkt(b"a/" * 32767 + b"a", b"deep", qos=1, pid=pid, v5=v5))
    elif m == "unsub_filter":
        x.sc.s(unsubscribe_pkt(pid, [big(), SHARE_LONG, b"+/" * 32767 + b"#"], v5=v5))
    elif m == "user_props" and v5:
        props = [(0x26, (big(), big())) for _ in range(rng.randint(1, 7))]
        x.sc.s(publish_pkt(x.topic(), b"up", qos=1, pid=pid, props=props))
    elif m == "response_topic" and v5:
        x.sc.s(publish_pkt(x.topic(), b"rt", qos=1, pid=pid, props=[(0x08, big()), (0x09, rng.randbytes(65535))]))
    elif m == "reason_string" and v5:
        x.sc.s(disconnect_pkt(0x80, [(0x1F, big()), (0x26, (big(), big()))]))
    elif m == "content_type" and v5:
        x.sc.s(publish_pkt(x.topic(), b"ct", qos=2, pid=pid, props=[(0x03, big())])).r(0.2).s(ack_pkt(PUBREL, pid))
    x.sc.r(0.4)
    x.end(v)


def case_retained(x: Ctx):
    rng, v = x.rng, x.v()
    v5 = v >= 5
    x.connect(v)
    base = b"wf/ret/%d" % rng.randrange(64)
    for i in range(rng.randint(1, 5)):
        t = rng.choice([base, base + b"/" + alnum(rng, rng.choice([1, 1000, 60000])), base + b"/x"])
        props = [(0x02, rng.choice([1, 2]))] if v5 and rng.random() < 0.3 else None
        x.sc.s(publish_pkt(t, rng.choice([b"", b"keep", alnum(rng, 4096)]), qos=rng.choice([0, 1]), pid=i + 1, retain=True,
                           props=props, v5=v5))
    opts = rng.choice([0, 1, 2, 0x10, 0x20, 0x30 | 1, 0x08 | 1])
    x.sc.s(subscribe_pkt(99, [(rng.choice([b"wf/ret/#", base + b"/+", b"+/ret/+", b"$share/r/wf/ret/#"]), opts)], v5=v5))
    x.note(f"retained:opts={opts:#x}:v{v}")
    x.sc.r(0.5)
    x.end(v)


def case_slow(x: Ctx):
    rng, v = x.rng, x.v()
    m = rng.choice(["partial_connect", "partial_publish", "drip", "idle_after_connect"])
    x.note(f"slow:{m}:v{v}")
    cp = connect_pkt(cid=x.cid(), v=v, keepalive=rng.choice([1, 2, 60]))
    if m == "partial_connect":
        k = rng.randint(1, len(cp) - 1)
        x.sc.s(cp[:k]).z(rng.uniform(0.2, 2.5)).s(cp[k:]).r(0.3)
    elif m == "partial_publish":
        x.sc.s(cp).r(0.3)
        p = publish_pkt(x.topic(), alnum(rng, 3000), qos=1, pid=3, v5=v >= 5)
        k = rng.randint(1, len(p) - 1)
        x.sc.s(p[:k]).z(rng.uniform(0.2, 2.5))
        if rng.random() < 0.5:
            x.sc.s(p[k:]).r(0.3)
    elif m == "drip":
        data = cp + subscribe_pkt(1, [(x.topic(), 1)], v5=v >= 5) + PINGREQ_PKT
        for i in range(0, min(len(data), 120)):
            x.sc.s(data[i:i + 1])
        x.sc.s(data[120:]).r(0.3)
    else:
        x.sc.s(cp).r(0.2).z(rng.uniform(1.0, 3.0)).r(0.5)
    if rng.random() < 0.5:
        x.sc.x()


def ws_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0,
             length: int | None = None, key: bytes | None = None) -> bytes:
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, mbit | n])
    elif n < 65536:
        hdr = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack("!Q", n & 0xFFFFFFFFFFFFFFFF)
    if not mask:
        return hdr + payload
    key = key or os.urandom(4)
    return hdr + key + ws_mask(payload, key)


def ws_mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def ws_request(port: int, path: str = "/mqtt", proto: str | None = "mqtt", version: str = "13", key: str | None = None,
               extra: str = "", method: str = "GET", http: str = "HTTP/1.1", upgrade: bool = True) -> bytes:
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [f"{method} {path} {http}", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if proto is not None:
        lines.append(f"Sec-WebSocket-Protocol: {proto}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


def case_ws_frames(x: Ctx):
    rng, v = x.rng, x.v()
    m = rng.choice(["text", "continuation_first", "fragmented_ping", "ping_big", "close_bad", "opcode", "rsv",
                    "unmasked", "len64", "len_lie", "empty_frames", "tiny_frames", "handshake", "handshake",
                    "pipelined", "close_then_data"])
    x.note(f"ws:{m}:v{v}")
    cp = connect_pkt(cid=x.cid(), v=v)
    if m in ("handshake", "pipelined"):
        port = 0  # the executor fills in the Host header's port: harmless if wrong
        if m == "pipelined":
            x.sc.mode = "rawhs"
            x.sc.h(ws_request(port) + ws_frame(2, cp)).r(0.5)
            x.sc.s(publish_pkt(x.topic(), b"after-pipelined", v5=v >= 5)).r(0.2)
            return
        variant = rng.choice(["nokey", "v8", "noproto", "otherproto", "path", "query", "bigheader", "garbage", "http10",
                              "noupgrade", "post", "twoprotos", "emptykey", "longpath"])
        x.note(variant)
        req = {
            "nokey": lambda: ws_request(port, key=""), "v8": lambda: ws_request(port, version="8"),
            "noproto": lambda: ws_request(port, proto=None), "otherproto": lambda: ws_request(port, proto="mqttv3.1"),
            "path": lambda: ws_request(port, path="/other"), "query": lambda: ws_request(port, path="/mqtt?x=1&y"),
            "bigheader": lambda: ws_request(port, extra="X-Fuzz: " + "a" * rng.choice([8000, 65536, 300000]) + "\r\n"),
            "garbage": lambda: rng.randbytes(rng.randint(10, 2000)) + b"\r\n\r\n",
            "http10": lambda: ws_request(port, http="HTTP/1.0"), "noupgrade": lambda: ws_request(port, upgrade=False),
            "post": lambda: ws_request(port, method="POST"), "twoprotos": lambda: ws_request(port, proto="foo, mqtt, mqtt"),
            "emptykey": lambda: ws_request(port, key="AAAA"), "longpath": lambda: ws_request(port, path="/mqtt" + "/x" * 40000),
        }[variant]()
        x.sc.mode = "rawhs"
        x.sc.h(req).r(0.5).w(ws_frame(2, cp)).r(0.3)
        return
    if m == "text":
        x.sc.w(ws_frame(1, cp)).r(0.5)
    elif m == "continuation_first":
        x.sc.w(ws_frame(0, cp)).r(0.5)
    elif m == "fragmented_ping":
        k = max(1, len(cp) // 2)
        x.sc.w(ws_frame(2, cp[:k], fin=False) + ws_frame(9, b"ping") + ws_frame(0, cp[k:])).r(0.5)
        x.sc.s(PINGREQ_PKT).r(0.3)
    elif m == "ping_big":
        x.sc.s(cp).r(0.3).w(ws_frame(9, b"p" * rng.choice([125, 126, 70000]))).r(0.3)
    elif m == "close_bad":
        x.sc.s(cp).r(0.3).w(ws_frame(8, rng.choice([b"\x03", b"\x03\xe8\xff\xfe", b"\x00\x00", b"\x0b\xb8" + b"r" * 200,
                                                    b"\x03\xe8bye"]))).r(0.3)
    elif m == "opcode":
        x.sc.s(cp).r(0.3).w(ws_frame(rng.choice([3, 4, 7, 0xB, 0xF]), b"xx")).r(0.3)
    elif m == "rsv":
        x.sc.w(ws_frame(2, cp, rsv=rng.choice([1, 2, 4, 7]))).r(0.5)
    elif m == "unmasked":
        x.sc.w(ws_frame(2, cp, mask=False)).r(0.5)
    elif m == "len64":
        x.sc.s(cp).r(0.3).w(ws_frame(2, b"\x30\x00", length=rng.choice([1 << 63, (1 << 64) - 1, 1 << 40, 1 << 31, 2 * 1048576]))).r(0.5)
    elif m == "len_lie":
        x.sc.w(ws_frame(2, cp, length=len(cp) + rng.choice([1, 10, 1000]))).r(0.5)
    elif m == "empty_frames":
        x.sc.w(b"".join(ws_frame(2, b"") for _ in range(rng.choice([10, 1000, 10000]))) + ws_frame(2, cp)).r(0.5)
    elif m == "close_then_data":
        x.sc.s(cp).r(0.3).w(ws_frame(8, b"\x03\xe8") + ws_frame(2, PINGREQ_PKT)).r(0.3)
    else:  # tiny_frames: a session a byte per frame
        data = cp + subscribe_pkt(1, [(x.topic(), 1)], v5=v >= 5) + PINGREQ_PKT
        x.sc.w(b"".join(ws_frame(2, data[i:i + 1]) for i in range(len(data)))).r(0.5)
    x.end(v)


def case_tls_raw(x: Ctx):
    rng, v = x.rng, x.v()
    m = rng.choice(["plain_mqtt", "nocert", "garbage_hello", "plain_http"])
    x.note(f"tls:{m}")
    if m == "nocert":
        x.sc.mode = "nocert"
        x.connect(v)
        x.normal_ops(v, 2)
        x.end(v)
        return
    x.sc.mode = "plain"
    if m == "plain_mqtt":
        x.sc.s(connect_pkt(cid=x.cid(), v=v)).r(0.5)
    elif m == "garbage_hello":
        x.sc.s(bytes.fromhex("16030100c4010000c00303") + rng.randbytes(rng.randint(10, 400))).r(0.5)
    else:
        x.sc.s(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").r(0.5)


# name -> (function, weight, transports it applies to)
ALL = ("tcp", "ws", "mtls")
CASES = {
    "connect_fields": (case_connect_fields, 10, ALL),
    "length_lies": (case_length_lies, 8, ALL),
    "publish_fields": (case_publish_fields, 10, ALL),
    "subscribe_fields": (case_subscribe_fields, 9, ALL),
    "props": (case_props, 9, ALL),
    "packet_order": (case_packet_order, 8, ALL),
    "qos_flows": (case_qos_flows, 9, ALL),
    "byte_mutation": (case_byte_mutation, 12, ALL),
    "random_bytes": (case_random_bytes, 4, ALL),
    "shadow": (case_shadow, 10, ALL),
    "takeover": (case_takeover, 4, ALL),
    "big_strings": (case_big_strings, 6, ALL),
    "retained": (case_retained, 3, ALL),
    "slow": (case_slow, 3, ALL),
    "ws_frames": (case_ws_frames, 10, ("ws",)),
    "tls_raw": (case_tls_raw, 3, ("mtls",)),
}


# ==========================================================================================
# Transports and the executor
# ==========================================================================================

class ConnectFailed(Exception):
    pass


class Conn:
    RX_CAP = 8 << 20
    SEND_TIMEOUT = 5.0

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.closed = False
        self.inbuf = bytearray()   # MQTT bytes from the server
        self.rx = 0
        self.anomalies: list[str] = []

    def send(self, data: bytes):
        self.sock.settimeout(self.SEND_TIMEOUT)
        self.sock.sendall(data)

    def raw(self, data: bytes):
        self.sock.settimeout(self.SEND_TIMEOUT)
        self.sock.sendall(data)

    def _feed(self, chunk: bytes):
        if len(self.inbuf) < self.RX_CAP:
            self.inbuf += chunk

    def recv_some(self, timeout: float) -> bool:
        """One recv; False on timeout. Sets closed on EOF/reset."""
        self.sock.settimeout(max(0.001, timeout))
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (OSError, ssl.SSLError):
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.rx += len(chunk)
        self._feed(chunk)
        return True

    def drain(self, max_t: float, idle: float = 0.15):
        deadline = time.monotonic() + max_t
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not self.recv_some(min(idle, left)):
                return

    def read_packet(self, deadline: float):
        """Next complete MQTT packet (first_byte, body) or None at the deadline/close."""
        while True:
            pkts, anomalies, used = parse_frames(self.inbuf, limit=1)
            if pkts:
                del self.inbuf[:used]
                return pkts[0]
            if anomalies or self.closed or time.monotonic() >= deadline:
                return None
            self.recv_some(min(0.5, deadline - time.monotonic()))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


class WsConn(Conn):
    def __init__(self, sock: socket.socket, port: int, rng: random.Random):
        super().__init__(sock)
        self.port = port
        self.rng = rng
        self.open = False
        self.wsbuf = bytearray()
        self.hs_buf = bytearray()
        self.status = None
        self.frag_msg = False

    def handshake(self, request: bytes | None = None, timeout: float = 5.0) -> int | None:
        standard = request is None
        if request is None:
            request = ws_request(self.port)
        else:
            request = request.replace(b"Host: 127.0.0.1:0\r\n", f"Host: 127.0.0.1:{self.port}\r\n".encode())
        self.sock.sendall(request)
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.hs_buf and len(self.hs_buf) < 65536 and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            self.hs_buf += chunk
        head, sep, rest = bytes(self.hs_buf).partition(b"\r\n\r\n")
        try:
            self.status = int(head.split(b"\r\n", 1)[0].split()[1]) if head else None
        except (IndexError, ValueError):
            self.status = None
        if sep and self.status == 101:
            self.open = True
            if standard and b"sec-websocket-protocol: mqtt" not in head.lower():
                self.anomalies.append("ws handshake answer without Sec-WebSocket-Protocol: mqtt")
            if rest:
                self._feed(rest)
        return self.status

    def send(self, data: bytes):
        self.sock.settimeout(self.SEND_TIMEOUT)
        if not self.open:
            self.sock.sendall(data)
            return
        r = self.rng.random()
        if r < 0.75 or len(data) < 2:
            self.sock.sendall(ws_frame(2, data))
        elif r < 0.92:  # the stream split into several binary frames
            cuts = sorted(self.rng.sample(range(1, len(data)), min(len(data) - 1, self.rng.randint(1, 6))))
            parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
            self.sock.sendall(b"".join(ws_frame(2, p) for p in parts))
        else:  # one fragmented message: binary FIN=0, continuations, last FIN=1
            cuts = sorted(self.rng.sample(range(1, len(data)), min(len(data) - 1, self.rng.randint(1, 4))))
            parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
            out = [ws_frame(2 if i == 0 else 0, p, fin=(i == len(parts) - 1)) for i, p in enumerate(parts)]
            self.sock.sendall(b"".join(out))

    def _feed(self, chunk: bytes):
        if not self.open:
            self.hs_buf += chunk
            return
        self.wsbuf += chunk
        while len(self.wsbuf) >= 2:
            b0, b1 = self.wsbuf[0], self.wsbuf[1]
            opcode, masked, n, pos = b0 & 0xF, b1 & 0x80, b1 & 0x7F, 2
            if n == 126:
                if len(self.wsbuf) < 4:
                    return
                n, pos = struct.unpack_from("!H", self.wsbuf, 2)[0], 4
            elif n == 127:
                if len(self.wsbuf) < 10:
                    return
                n, pos = struct.unpack_from("!Q", self.wsbuf, 2)[0], 10
            if masked:
                self.anomalies.append("server sent a masked WebSocket frame")
                pos += 4
            if n > 64 << 20:
                self.anomalies.append(f"server WebSocket frame claims {n} bytes")
                self.wsbuf.clear()
                return
            if len(self.wsbuf) < pos + n:
                return
            payload = bytes(self.wsbuf[pos:pos + n])
            del self.wsbuf[:pos + n]
            if opcode in (0, 2):
                if len(self.inbuf) < self.RX_CAP:
                    self.inbuf += payload
            elif opcode == 1:
                self.anomalies.append("server sent a WebSocket text frame")
            elif opcode == 8:
                self.closed = True
                return
            elif opcode == 9:
                try:
                    self.sock.sendall(ws_frame(0xA, payload[:125]))
                except OSError:
                    pass


class Target:
    """Where the server listens, and how to reach each transport."""

    def __init__(self, host: str, mqtt_port: int, http_port: int, mqtts_port: int):
        self.host, self.mqtt_port, self.http_port, self.mqtts_port = host, mqtt_port, http_port, mqtts_port
        self.tls_ctx: ssl.SSLContext | None = None
        self.tls_nocert_ctx: ssl.SSLContext | None = None
        self.tls_hostname = "localhost"

    def open(self, transport: str, mode: str, rng: random.Random, timeout: float = 3.0) -> Conn:
        try:
            if transport == "tcp":
                sock = socket.create_connection((self.host, self.mqtt_port), timeout=timeout)
                return Conn(sock)
            if transport == "ws":
                sock = socket.create_connection((self.host, self.http_port), timeout=timeout)
                c = WsConn(sock, self.http_port, rng)
                if mode != "rawhs":
                    st = c.handshake(timeout=timeout)
                    if st != 101:
                        c.close()
                        raise ConnectFailed(f"ws handshake status {st}")
                return c
            if transport == "mtls":
                sock = socket.create_connection((self.host, self.mqtts_port), timeout=timeout)
                if mode == "plain":
                    return Conn(sock)
                ctx = self.tls_nocert_ctx if mode == "nocert" else self.tls_ctx
                sock.settimeout(timeout)
                try:
                    tls = ctx.wrap_socket(sock, server_hostname=self.tls_hostname)
                except (ssl.SSLError, OSError) as e:
                    sock.close()
                    if mode == "nocert":
                        c = Conn(socket.socket())
                        c.closed = True
                        return c  # refused handshake: the expected outcome
                    raise ConnectFailed(f"tls handshake: {e}")
                return Conn(tls)
        except ConnectFailed:
            raise
        except OSError as e:
            raise ConnectFailed(f"{transport} connect: {e}")
        raise ValueError(transport)


def analyze_server_stream(conn: Conn, version: int | None) -> list[str]:
    """Protocol checks on what the server sent on one connection."""
    out = list(conn.anomalies)
    pkts, anomalies, _ = parse_frames(conn.inbuf)
    out += anomalies
    seen_disconnect = False
    for i, (fb, body) in enumerate(pkts):
        t, f = fb >> 4, fb & 0xF
        name = PTYPE_NAMES[t]
        if seen_disconnect:
            out.append(f"server sent {name} after its DISCONNECT")
            break
        if t in (0, CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ):
            out.append(f"server sent a {name} packet")
        elif t == PUBLISH and (f >> 1) & 3 == 3:
            out.append("server sent a PUBLISH with QoS 3")
        elif t != PUBLISH and f != (2 if t == PUBREL else 0):
            out.append(f"server sent {name} with flags {f:#x}")
        if i == 0 and t not in (CONNACK, DISCONNECT):
            out.append(f"server's first packet is {name}, not CONNACK")
        if version == 4 and t in (DISCONNECT, AUTH):
            out.append(f"server sent {name} to an MQTT 3.1.1 client")
        if t == DISCONNECT:
            seen_disconnect = True
    return out


def disconnect_reasons(conn: Conn) -> list[int]:
    pkts, _, _ = parse_frames(conn.inbuf)
    out = []
    for fb, body in pkts:
        if fb >> 4 == DISCONNECT:
            out.append(body[0] if body else 0)
        elif fb >> 4 == CONNACK and len(body) >= 2 and body[1] != 0:
            out.append(0x1000 | body[1])  # marks a refusing CONNACK
    return out


def execute(target: Target, script: Script, deadline: float, rng: random.Random, read_scale: float = 1.0) -> dict:
    """Run one script; everything bounded by socket timeouts and the deadline."""
    conns: dict[int, Conn] = {}
    gone: set[int] = set()
    said_bye: set[int] = set()  # connections on which we sent something ending in a DISCONNECT
    out = {"sent": 0, "server_closed": False, "connect_failed": None, "anomalies": [], "reasons": [], "steps": 0,
           "deliveries": 0, "t_last_send": None}
    try:
        for op, arg, ci in script.steps:
            if time.monotonic() >= deadline:
                out["deadline"] = True
                break
            if op == "z":
                time.sleep(max(0.0, min(arg, deadline - time.monotonic())))
                out["steps"] += 1
                continue
            if ci in gone:
                continue
            conn = conns.get(ci)
            if conn is None:
                try:
                    conn = target.open(script.transport, script.mode, rng)
                except ConnectFailed as e:
                    out["connect_failed"] = str(e)
                    gone.add(ci)
                    continue
                conns[ci] = conn
            out["steps"] += 1
            try:
                if op == "s":
                    if arg[:1] == b"\xe0" or arg.endswith(b"\xe0\x00"):
                        said_bye.add(ci)
                    conn.send(arg)
                    out["sent"] += len(arg)
                    out["t_last_send"] = time.monotonic()
                elif op == "w":
                    conn.raw(arg)
                    out["sent"] += len(arg)
                    out["t_last_send"] = time.monotonic()
                elif op == "h":
                    if isinstance(conn, WsConn):
                        conn.handshake(arg)
                    else:
                        conn.raw(arg)
                    out["sent"] += len(arg)
                elif op == "r":
                    conn.drain(min(arg * read_scale, max(0.0, deadline - time.monotonic())))
                elif op == "x":
                    conn.abort()
                    gone.add(ci)
                elif op == "c":
                    conn.close()
                    gone.add(ci)
            except (OSError, ssl.SSLError):
                conn.closed = True
            if conn.closed and ci not in gone:
                if ci not in said_bye:
                    out["server_closed"] = True
                gone.add(ci)
    finally:
        for ci, conn in conns.items():
            if ci not in gone:
                conn.drain(0.05, idle=0.05)
                if conn.closed and ci not in said_bye:
                    out["server_closed"] = True
            if not (script.transport == "mtls" and script.mode == "plain"):  # TLS records there, not MQTT
                found = analyze_server_stream(conn, script.versions.get(ci))
                if found:
                    out["anomalies"] += found
                    out.setdefault("server_head", {})[ci] = bytes(conn.inbuf[:256]).hex()
                out["reasons"] += disconnect_reasons(conn)
                out["deliveries"] += sum(1 for fb, _ in parse_frames(conn.inbuf)[0] if fb >> 4 == PUBLISH)
            conn.close()
    return out


# ==========================================================================================
# The server: our own `drover serve`, or an attached one
# ==========================================================================================

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def open_by_others(path: Path) -> list[int]:
    """PIDs holding path open as a file (a linker writing it). A running server maps its binary
    but holds no descriptor for it, so it does not count."""
    try:
        real = os.path.realpath(path)
    except OSError:
        return []
    pids = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                try:
                    if os.readlink(f"/proc/{d}/fd/{fd}") == real:
                        pids.append(int(d))
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return pids


def binary_state(binary: Path) -> tuple | None:
    try:
        st = binary.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def binary_unsettled(binary: Path, quiet_s: float = 5.0) -> str | None:
    """Why the binary may still be being written (gold links in place: a half-linked file is
    executable, runs, and crashes on whatever code is not written yet), or None."""
    st = binary_state(binary)
    if st is None:
        return f"{binary} does not exist (yet)"
    if not os.access(binary, os.X_OK):
        return f"{binary} is not executable (yet)"
    age = time.time() - st[2] / 1e9
    if age < quiet_s:
        return f"{binary} was modified {age:.1f}s ago"
    writers = open_by_others(binary)
    if writers:
        return f"{binary} is open in process {writers[0]} (a linker?)"
    return None


def wait_for_binary(binary: Path, wait_s: float) -> tuple[bool, str]:
    """Wait until the binary exists, is not being written, and `--help` runs."""
    deadline = time.monotonic() + wait_s
    announced = False
    last = ""
    while True:
        last = binary_unsettled(binary) or ""
        if not last:
            before = binary_state(binary)
            try:
                r = subprocess.run([str(binary), "--help"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
                if r.returncode == 0 and binary_state(binary) == before:
                    return True, ""
                last = f"`{binary} --help` exited {r.returncode}" if r.returncode else f"{binary} changed meanwhile"
            except (OSError, subprocess.TimeoutExpired) as e:
                last = f"`{binary} --help`: {e}"
        if time.monotonic() >= deadline:
            return False, last
        if not announced:
            log(f"waiting up to {wait_s:.0f}s for {binary} ({last})")
            announced = True
        time.sleep(max(0.5, min(3.0, deadline - time.monotonic())))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class OwnServer:
    def __init__(self, binary: Path, workdir: Path, env_extra: dict[str, str], copy_binary: bool):
        self.binary = binary
        self.workdir = workdir
        self.env_extra = env_extra
        self.copy_binary = copy_binary
        self.proc: subprocess.Popen | None = None
        self.data_dir = workdir / "data"
        self.log_path = workdir / "drover.log"
        self.mqtt_port = self.http_port = self.mqtts_port = 0
        self.exec_path = binary
        self.exit_seen_at: float | None = None
        self.stopping = False
        self.generation = 0
        self.binary_identity: dict = {"path": str(binary)}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, fresh: bool = True) -> None:
        if self.copy_binary and self.exec_path == self.binary:
            # A private copy: the build can replace or relink the original while we run. Copied only
            # while nobody writes it, and checked unchanged across the copy.
            dst = self.workdir / "drover"
            for attempt in range(5):
                why = binary_unsettled(self.binary)
                if why:
                    ok, why = wait_for_binary(self.binary, 600)
                    if not ok:
                        raise RuntimeError(f"binary not usable: {why}")
                before = binary_state(self.binary)
                try:
                    shutil.copy2(self.binary, dst)
                except OSError as e:
                    log(f"could not copy the binary ({e}); running it in place")
                    break
                if binary_state(self.binary) == before and not open_by_others(self.binary):
                    self.exec_path = dst
                    self.binary_identity = {"path": str(self.binary), "size": before[1],
                                            "mtime": datetime.datetime.fromtimestamp(before[2] / 1e9).isoformat(),
                                            "sha256": sha256_file(dst)}
                    break
                log("the binary changed while it was being copied; waiting and copying again")
                time.sleep(3)
            else:
                raise RuntimeError("the binary keeps changing (a build in progress?)")
        last = ""
        for _ in range(3):
            self.generation += 1
            if fresh:
                self.data_dir = self.workdir / f"data{self.generation}"
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.mqtt_port, self.http_port, self.mqtts_port = free_port(), free_port(), free_port()
            if len({self.mqtt_port, self.http_port, self.mqtts_port}) < 3:
                continue
            env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
            env.update(DROVER_MQTT_BIND=HOST, DROVER_HTTP_BIND=HOST, DROVER_MQTTS_BIND=HOST, DROVER_CREDENTIALS_PORT="0")
            env.setdefault("SWIFT_BACKTRACE", "enable=yes,interactive=no,color=no,symbolicate=fast")
            env.update(self.env_extra)
            args = [str(self.exec_path), "serve", "--data-dir", str(self.data_dir), "--mqtt-port", str(self.mqtt_port),
                    "--mqtts-port", str(self.mqtts_port), "--http-port", str(self.http_port), "--https-port", "0"]
            with open(self.log_path, "ab") as f:
                f.write(f"\n### wirefuzz starting: {' '.join(args)}\n".encode())
            logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         cwd=str(self.workdir))
            logf.close()
            self.exit_seen_at = None
            ok, last = self._wait_ready(60.0)
            if ok:
                return
            self.kill()
            if "address already in use" not in self.log_tail(40).lower():
                break
        raise RuntimeError(f"server did not become ready: {last}\n--- log tail ---\n{self.log_tail(60)}")

    def _wait_ready(self, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        err = "timeout"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"process exited with {self.proc.returncode}"
            try:
                with socket.create_connection((HOST, self.mqtt_port), timeout=1):
                    pass
                code = http_get(HOST, self.http_port, "/health", 2)
                if code == 200:
                    return True, ""
                err = f"/health returned {code}"
            except Exception as e:
                err = repr(e)
            time.sleep(0.2)
        return False, f"not ready within {timeout:.0f}s ({err})"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self):
        return self.proc.returncode if self.proc else None

    def stop(self, timeout: float = 10.0) -> tuple[int | None, bool]:
        """SIGTERM our PID, wait, then SIGKILL. Returns (exit code, needed SIGKILL)."""
        self.stopping = True
        if self.proc is None:
            return None, False
        killed = False
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self.kill()
        self.stopping = False
        return self.proc.returncode, killed

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def log_tail(self, lines: int = 120) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def rss_kb(self) -> int | None:
        return proc_rss_kb(self.pid)


class AttachedServer:
    def __init__(self, pid: int | None, data_dir: Path | None, log_path: Path | None):
        self.given_pid = pid
        self.data_dir = data_dir
        self.log_path = log_path
        self.exit_seen_at = None
        self.stopping = False

    @property
    def pid(self):
        return self.given_pid

    def alive(self) -> bool:
        if self.given_pid is None:
            return True
        try:
            with open(f"/proc/{self.given_pid}/stat") as f:
                return f.read().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False

    def returncode(self):
        return None

    def log_tail(self, lines: int = 120) -> str:
        if not self.log_path:
            return "(attached server: pass --log FILE to include its log)"
        try:
            return "\n".join(self.log_path.read_bytes()[-256 * 1024:].decode("utf-8", "replace").splitlines()[-lines:])
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"

    def rss_kb(self):
        return proc_rss_kb(self.given_pid)


def find_listener_pid(port: int) -> int | None:
    """The PID of the process listening on a local TCP port (from /proc; our own processes only)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            pass
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                try:
                    if os.readlink(f"/proc/{d}/fd/{fd}") in wanted:
                        return int(d)
                except OSError:
                    continue
        except OSError:
            continue
    return None


def proc_rss_kb(pid) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def http_get(host: str, port: int, path: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as r:
            r.read(65536)
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# ==========================================================================================
# The signed control-plane API (SigV4) and provisioning
# ==========================================================================================

def _sigv4_headers(method: str, url: str, body: bytes, key_id: str, secret: str, region: str, service: str = "iot") -> dict:
    """Signature Version 4 headers, written from the AWS spec (used when botocore is absent)."""
    u = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    enc = lambda s: urllib.parse.quote(s, safe="-_.~")
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted((enc(k), enc(v)) for k, v in q))
    path = urllib.parse.quote(u.path or "/", safe="/-_.~")
    headers = {"host": u.netloc, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
    signed = ";".join(sorted(headers))
    canonical_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
    creq = "\n".join([method, path, canonical_query, canonical_headers, signed, payload_hash])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"X-Amz-Date": amz_date, "X-Amz-Content-Sha256": payload_hash,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={sig}"}


class Api:
    def __init__(self, endpoint: str, key_id: str, secret: str, region: str = REGION, signer: str = "auto"):
        self.endpoint, self.key_id, self.secret, self.region = endpoint, key_id, secret, region
        self.signer = "builtin"
        if signer in ("auto", "botocore"):
            try:
                from botocore.auth import SigV4Auth  # noqa: F401
                self.signer = "botocore"
            except ImportError:
                if signer == "botocore":
                    raise RuntimeError("--signer botocore: botocore is not importable (run under .venv/bin/python)")

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
        url = self.endpoint + path
        data = json.dumps(body).encode() if body is not None else b""
        hdrs = dict(headers or {})
        if data:
            hdrs["Content-Type"] = "application/json"
        if self.signer == "botocore":
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            req = AWSRequest(method=method, url=url, data=data, headers=hdrs)
            SigV4Auth(Credentials(self.key_id, self.secret), "iot", self.region).add_auth(req)
            hdrs = dict(req.headers)
        else:
            hdrs.update(_sigv4_headers(method, url, data, self.key_id, self.secret, self.region))
        req = urllib.request.Request(url, data=data or None, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw.strip() else {})
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw) if raw.strip() else {}
            except ValueError:
                return e.code, {"raw": raw[:300].decode("utf-8", "replace")}


def read_credentials(path: Path) -> tuple[str, str] | None:
    parser = configparser.ConfigParser()
    try:
        if not parser.read(path):
            return None
        return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]
    except (KeyError, configparser.Error):
        return None


def provision(api: Api, target: Target, workdir: Path, ca_file: Path | None) -> tuple[list[str], str | None]:
    """Create the check thing, and a thing + certificate + allow-all policy for mutual TLS.
    Returns (notes, reason mTLS is unavailable or None)."""
    notes = []
    st, body = api.call("POST", f"/things/{CHECK_THING}", {})
    notes.append(f"CreateThing {CHECK_THING}: {st}" + ("" if st in (200, 409) else f" {body}"))
    if st not in (200, 409):
        return notes, f"CreateThing failed ({st} {body})"
    if not target.mqtts_port:
        return notes, "no mutual-TLS port"
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})
    st, body = api.call("POST", f"/policies/{POLICY_NAME}", {"policyDocument": doc})
    if st not in (200, 409):
        return notes, f"CreatePolicy failed ({st} {body})"
    st, cert = api.call("POST", "/keys-and-certificate?setAsActive=true")
    if st != 200:
        return notes, f"CreateKeysAndCertificate failed ({st} {cert})"
    arn = cert["certificateArn"]
    st, body = api.call("PUT", f"/target-policies/{POLICY_NAME}", {"target": arn})
    if st != 200:
        return notes, f"AttachPolicy failed ({st} {body})"
    st, body = api.call("POST", f"/things/{DEVICE_THING}", {})
    if st not in (200, 409):
        return notes, f"CreateThing {DEVICE_THING} failed ({st} {body})"
    st, body = api.call("PUT", f"/things/{DEVICE_THING}/principals", headers={"x-amzn-principal": arn})
    if st != 200:
        return notes, f"AttachThingPrincipal failed ({st} {body})"
    certf, keyf = workdir / "device.pem", workdir / "device.key"
    certf.write_text(cert["certificatePem"])
    keyf.write_text(cert["keyPair"]["PrivateKey"])
    os.chmod(keyf, 0o600)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file and ca_file.exists():
        ctx.load_verify_locations(str(ca_file))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        notes.append("no CA file: the server's certificate is not verified")
    ctx.load_cert_chain(str(certf), str(keyf))
    nocert = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    nocert.check_hostname = False
    nocert.verify_mode = ssl.CERT_NONE
    target.tls_ctx, target.tls_nocert_ctx = ctx, nocert
    notes.append(f"mTLS device {DEVICE_THING} with certificate {cert['certificateId'][:12]}... and policy {POLICY_NAME} (iot:*)")
    # One real session to prove it works.
    try:
        c = target.open("mtls", "", random.Random(0), timeout=10)
        c.send(connect_pkt(cid=b"wirefuzz-mtls-probe", v=5))
        p = c.read_packet(time.monotonic() + 10)
        c.close()
    except ConnectFailed as e:
        target.tls_ctx = None
        return notes, f"mTLS probe: {e}"
    if not p or p[0] >> 4 != CONNACK or len(p[1]) < 2 or p[1][1] != 0:
        target.tls_ctx = None
        return notes, f"mTLS probe CONNECT refused: {p!r}"
    return notes, None


# ==========================================================================================
# Round checks
# ==========================================================================================

def round_trip_check(target: Target, n: int, timeout: float) -> dict:
    """A fresh TCP client: routing (its own publish comes back) and a shadow get answered."""
    res = {"routing": False, "shadow": None, "routing_ms": None, "shadow_ms": None, "error": None}
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    try:
        conn = target.open("tcp", "", random.Random(n), timeout=min(5.0, timeout))
    except ConnectFailed as e:
        res["error"] = str(e)
        return res
    try:
        conn.send(connect_pkt(cid=b"wirefuzz-check-%d" % n, v=5))
        p = conn.read_packet(deadline)
        if not p or p[0] >> 4 != CONNACK or len(p[1]) < 2 or p[1][1] != 0:
            res["error"] = f"CONNACK: {p!r}"[:200]
            return res
        topic = b"wirefuzz/check/%d/%d" % (n, random.randrange(1 << 30))
        shadow = b"$aws/things/" + CHECK_THING.encode() + b"/shadow/get"
        conn.send(subscribe_pkt(1, [(topic, 1), (shadow + b"/accepted", 1), (shadow + b"/rejected", 1)]))
        token = b"tok-%d-%d" % (n, random.randrange(1 << 30))
        got_suback = False
        conn.send(publish_pkt(topic, token, qos=1, pid=2))
        shadow_sent_at = None
        while time.monotonic() < deadline:
            p = conn.read_packet(deadline)
            if p is None:
                if conn.closed:
                    res["error"] = "the server closed the check connection"
                break
            fb, body = p
            t = fb >> 4
            if t == SUBACK:
                got_suback = True
                _, pos = dec_props(body, 2)
                if any(code >= 0x80 for code in body[pos:]):
                    res["error"] = f"SUBACK refused: {body!r}"
            elif t == PUBLISH:
                qos = (fb >> 1) & 3
                tl = struct.unpack_from("!H", body, 0)[0]
                ptopic = body[2:2 + tl]
                pos = 2 + tl
                if qos:
                    ppid = struct.unpack_from("!H", body, pos)[0]
                    pos += 2
                    conn.send(ack_pkt(PUBACK if qos == 1 else PUBREC, ppid))
                _, pos = dec_props(body, pos)
                payload = body[pos:]
                if ptopic == topic and payload == token and not res["routing"]:
                    res["routing"] = True
                    res["routing_ms"] = round((time.monotonic() - t0) * 1000)
                    shadow_sent_at = time.monotonic()
                    conn.send(publish_pkt(shadow, json.dumps({"clientToken": token.decode()}).encode(), qos=1, pid=3))
                elif ptopic.startswith(shadow + b"/") and shadow_sent_at is not None:
                    res["shadow"] = ptopic.rsplit(b"/", 1)[1].decode()
                    res["shadow_ms"] = round((time.monotonic() - shadow_sent_at) * 1000)
                    break
            elif t == PUBREL:
                conn.send(ack_pkt(PUBCOMP, struct.unpack_from("!H", body, 0)[0]))
            elif t == DISCONNECT:
                res["error"] = f"DISCONNECT {body[:1].hex()} on the check connection"
                break
        if not res["error"]:
            if not got_suback:
                res["error"] = "no SUBACK"
            elif not res["routing"]:
                res["error"] = "own publish not received"
            elif res["shadow"] is None:
                res["error"] = "shadow get not answered"
        try:
            conn.send(disconnect_pkt())
        except OSError:
            pass
    finally:
        conn.close()
    return res


# ==========================================================================================
# The fuzzer
# ==========================================================================================

_log_lock = threading.Lock()
_t0 = time.monotonic()


def log(msg: str):
    with _log_lock:
        print(f"[wirefuzz {time.monotonic() - _t0:7.1f}s] {msg}", flush=True)


class Record:
    __slots__ = ("wid", "seq", "script", "t_start", "t_end", "outcome")

    def __init__(self, wid, seq, script, t_start):
        self.wid, self.seq, self.script, self.t_start = wid, seq, script, t_start
        self.t_end = None
        self.outcome = None

    def suspicion(self, crash_at: float | None) -> tuple:
        """Sort key: inputs in flight at the failure whose last bytes went out just before it first."""
        if crash_at is None:
            return (2, -self.t_start)
        in_flight = self.t_start <= crash_at and (self.t_end is None or self.t_end >= crash_at - 0.25)
        last = (self.outcome or {}).get("t_last_send")
        if in_flight and last is not None and last <= crash_at + 0.05:
            return (0, crash_at - last)
        return (1 if in_flight else 2, -self.t_start)

    def to_json(self, t0: float, crash_at: float | None) -> dict:
        d = self.script.to_json()
        last = (self.outcome or {}).get("t_last_send")
        d.update(worker=self.wid, seq=self.seq, t_start=round(self.t_start - t0, 3),
                 t_last_send=None if last is None else round(last - t0, 3),
                 t_end=None if self.t_end is None else round(self.t_end - t0, 3),
                 in_flight_at_failure=bool(crash_at is not None and self.t_start <= crash_at and
                                           (self.t_end is None or self.t_end >= crash_at - 0.25)),
                 outcome={k: v for k, v in (self.outcome or {}).items()
                          if k in ("server_closed", "connect_failed", "reasons", "anomalies", "sent", "server_head")})
        return d


class Fuzzer:
    def __init__(self, args, server, target: Target, transports: list[str]):
        self.args = args
        self.server = server
        self.target = target
        self.transports = transports
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.failure = threading.Event()
        self.lock = threading.Lock()
        self.rings: dict[int, collections.deque] = {}
        self.inputs = 0
        self.bytes_sent = 0
        self.per_case: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.per_transport = collections.Counter()
        self.reasons = collections.Counter()
        self.anomalies: dict[str, dict] = {}
        self.connect_failures = collections.Counter()
        self.internal_errors: list[str] = []
        self.crash_at: float | None = None
        self.t0 = time.monotonic()
        self.in_flight = 0
        self.server_pid = server.pid

    # -- workers ------------------------------------------------------------
    def pick_case(self, rng: random.Random, transport: str) -> str:
        names = [n for n, (_, w, tr) in CASES.items() if transport in tr and (not self.args.cases or n in self.args.cases)]
        weights = [CASES[n][1] for n in names]
        return rng.choices(names, weights)[0]

    def worker(self, wid: int, end: float):
        rng = random.Random(f"{self.args.seed}:{wid}")
        ring = collections.deque(maxlen=self.args.keep)
        self.rings[wid] = ring
        seq = 0
        tw = {"tcp": 5, "ws": 3, "mtls": 2}
        trs = [t for t in self.transports]
        while not self.stop.is_set() and not self.failure.is_set() and time.monotonic() < end:
            if not self.server.stopping and not self.server.alive():
                break
            if self.pause.is_set():
                time.sleep(0.1)
                continue
            seq += 1
            transport = rng.choices(trs, [tw[t] for t in trs])[0]
            name = self.pick_case(rng, transport)
            sseed = rng.getrandbits(48)
            script = Script(name, transport, sseed)
            srng = random.Random(sseed)
            try:
                CASES[name][0](Ctx(srng, wid, seq, transport, script))
            except Exception:
                with self.lock:
                    if len(self.internal_errors) < 5:
                        self.internal_errors.append(f"{name}: {traceback.format_exc(limit=3)}")
                continue
            rec = Record(wid, seq, script, time.monotonic())
            ring.append(rec)
            with self.lock:
                self.in_flight += 1
            try:
                outcome = execute(self.target, script, min(end + 2, time.monotonic() + self.args.case_timeout),
                                  random.Random(sseed ^ 0x5A5A))
            finally:
                rec.t_end = time.monotonic()
                with self.lock:
                    self.in_flight -= 1
            rec.outcome = outcome
            if outcome["connect_failed"] and not outcome["sent"] and ring and ring[-1] is rec:
                ring.pop()  # nothing reached the server: not worth a slot in the crash report
            with self.lock:
                self.inputs += 1
                self.bytes_sent += outcome["sent"]
                self.per_transport[transport] += 1
                c = self.per_case[name]
                c["runs"] += 1
                c["server_closed"] += 1 if outcome["server_closed"] else 0
                c["deliveries"] += outcome["deliveries"]
                if outcome["connect_failed"]:
                    c["connect_failed"] += 1
                    self.connect_failures[f"{transport}: {outcome['connect_failed'][:80]}"] += 1
                for r in outcome["reasons"]:
                    self.reasons[r] += 1
                    c[f"reason:{r}"] += 1
                for a in outcome["anomalies"]:
                    slot = self.anomalies.setdefault(a, {"count": 0, "example": None})
                    slot["count"] += 1
                    if slot["example"] is None:
                        slot["example"] = rec
            if self.server.exit_seen_at is not None:
                break

    def watch_process(self):
        while not self.stop.is_set():
            if not self.server.stopping and not self.server.alive():
                self.server.exit_seen_at = time.monotonic()
                self.crash_at = self.server.exit_seen_at
                self.failure.set()
                return
            time.sleep(0.05)

    # -- checks ---------------------------------------------------------------
    def check(self, n: int, timeout: float) -> dict:
        t = time.monotonic()
        out = {"n": n, "alive": self.server.alive(), "health": None, "health_ms": None}
        if not out["alive"]:
            return out
        try:
            out["health"] = http_get(self.target.host, self.target.http_port, "/health", timeout)
        except Exception as e:  # timeouts, resets, bad status lines
            out["health"] = f"error: {e!r}"
        out["health_ms"] = round((time.monotonic() - t) * 1000)
        if out["health"] == 200:
            out.update(round_trip_check(self.target, n, timeout))
        return out

    @staticmethod
    def check_ok(c: dict) -> bool:
        return bool(c["alive"] and c["health"] == 200 and c.get("routing") and c.get("shadow") and not c.get("error"))

    def run(self) -> dict:
        a = self.args
        end = self.t0 + a.duration
        threads = [threading.Thread(target=self.worker, args=(i, end), daemon=True, name=f"fuzz-{i}") for i in range(a.clients)]
        watcher = threading.Thread(target=self.watch_process, daemon=True)
        watcher.start()
        for t in threads:
            t.start()
        rounds = []
        stalls = []
        failure = None
        n = 0
        next_round = self.t0 + a.round_seconds
        while True:
            now = time.monotonic()
            if self.failure.is_set():
                failure = {"kind": "crash"}
                break
            if now >= end:
                break
            if now < next_round:
                self.failure.wait(min(0.2, next_round - now))
                continue
            next_round = now + a.round_seconds
            n += 1
            c = self.check(n, a.check_timeout)
            c["rss_kb"] = self.server.rss_kb()
            c["inputs"] = self.inputs
            rounds.append(c)
            if not c["alive"] or self.failure.is_set():
                failure = {"kind": "crash"}
                break
            if self.check_ok(c):
                log(f"round {n}: ok  inputs={self.inputs} health={c['health_ms']}ms routing={c['routing_ms']}ms "
                    f"shadow={c['shadow']}/{c['shadow_ms']}ms rss={fmt_kb(c['rss_kb'])}")
                continue
            # Failed: give the server a second chance with the fuzzers paused.
            log(f"round {n}: FAILED ({describe_check(c)}); pausing the fuzzers and checking again")
            self.pause.set()
            hang_time = time.monotonic()
            self.failure.wait(2.0)
            c2 = self.check(n, a.check_timeout)
            if not c2["alive"] or self.failure.is_set():
                failure = {"kind": "crash"}
                break
            if self.check_ok(c2):
                stalls.append({"round": n, "first": describe_check(c), "t": round(hang_time - self.t0, 1)})
                log(f"round {n}: recovered once the fuzzers paused (a stall, not a hang)")
                self.pause.clear()
                continue
            # Not answering twice. Maybe it is dying (the Swift backtracer takes a while): wait for an exit.
            tail = self.server.log_tail(200)
            dying = any(m in tail for m in CRASH_MARKERS)
            wait = 30.0 if dying else 3.0
            log(f"round {n}: failed again ({describe_check(c2)}); waiting {wait:.0f}s to see if the process exits"
                + (" (the log shows a crash in progress)" if dying else ""))
            self.failure.wait(wait)
            if not self.server.alive():
                failure = {"kind": "crash"}
            else:
                failure = {"kind": "hang", "check": describe_check(c2), "first_check": describe_check(c)}
                self.crash_at = hang_time
            break
        self.stop.set()
        join_by = time.monotonic() + a.case_timeout + 10
        for t in threads:
            t.join(timeout=max(0.1, join_by - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log(f"{len(stuck)} fuzz threads still busy after {a.case_timeout + 10:.0f}s (left behind: daemon threads)")
        if failure is None:
            # one last check after the load is gone
            n += 1
            c = self.check(n, a.check_timeout)
            c["rss_kb"] = self.server.rss_kb()
            rounds.append(c)
            if not c["alive"]:
                failure = {"kind": "crash"}
            elif not self.check_ok(c):
                time.sleep(2)
                c2 = self.check(n, a.check_timeout)
                rounds.append(c2)
                if not c2["alive"]:
                    failure = {"kind": "crash"}
                elif not self.check_ok(c2):
                    failure = {"kind": "hang", "check": describe_check(c2), "first_check": describe_check(c)}
                    self.crash_at = time.monotonic()
                else:
                    log(f"final round: ok (after a retry)")
            else:
                log(f"final round {n}: ok  rss={fmt_kb(c['rss_kb'])}")
        if failure and failure["kind"] == "crash":
            if self.crash_at is None:
                self.crash_at = self.server.exit_seen_at or time.monotonic()
            failure["returncode"] = self.server.returncode()
        return {"rounds": rounds, "stalls": stalls, "failure": failure}

    def all_records(self) -> list[Record]:
        out = []
        for ring in self.rings.values():
            out += list(ring)
        return out


CRASH_MARKERS = ("Fatal error", "Program crashed", "💣", "Crash at", "Thread 0 crashed", "Segmentation fault")


def fmt_kb(kb):
    return "?" if kb is None else f"{kb / 1024:.0f}MB"


def describe_check(c: dict) -> str:
    if not c["alive"]:
        return "process not alive"
    if c["health"] != 200:
        return f"/health: {c['health']}"
    return c.get("error") or ("ok" if c.get("shadow") else "incomplete")


def signal_name(rc) -> str:
    if rc is None:
        return "unknown"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def save_failure(out_dir: Path, kind: str, fz: Fuzzer, server, args, extra: dict) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    d = out_dir / f"{kind}-{stamp}-seed{args.seed}"
    d.mkdir(parents=True, exist_ok=True)
    crash_at = fz.crash_at
    inflight = []
    for wid, ring in sorted(fz.rings.items()):
        with open(d / f"client-{wid:02d}.jsonl", "w") as f:
            for rec in list(ring):
                j = rec.to_json(fz.t0, crash_at)
                f.write(json.dumps(j) + "\n")
                if j["in_flight_at_failure"]:
                    inflight.append(j)
    order = {(r.wid, r.seq): r.suspicion(crash_at) for r in fz.all_records()}
    inflight.sort(key=lambda j: order.get((j["worker"], j["seq"]), (9,)))
    with open(d / "in-flight.jsonl", "w") as f:
        for j in inflight:
            f.write(json.dumps(j) + "\n")
    (d / "server-log-tail.txt").write_text(server.log_tail(400) + "\n")
    log_path = getattr(server, "log_path", None)
    try:
        if log_path and log_path.exists() and log_path.stat().st_size < 64 << 20:
            shutil.copy(log_path, d / "server.log")
    except OSError:
        pass
    summary = {"kind": kind, "seed": args.seed, "clients": args.clients, "at_seconds": round((crash_at or time.monotonic()) - fz.t0, 2),
               "pid": fz.server_pid, "argv": sys.argv, "binary": getattr(server, "binary_identity", None), **extra,
               "in_flight": [{"worker": j["worker"], "seq": j["seq"], "case": j["case"], "transport": j["transport"],
                              "desc": j["desc"][:300]} for j in inflight]}
    (d / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (d / "README.txt").write_text(
        f"wirefuzz {kind} at {summary['at_seconds']}s (seed {args.seed}).\n"
        f"client-NN.jsonl: the last {args.keep} inputs of each client thread, oldest first; in-flight.jsonl: those\n"
        f"running when the failure was seen. Replay (a fresh server from --binary, or --host/--port):\n"
        f"  scripts/wirefuzz.sh --replay {d}/in-flight.jsonl\n  scripts/wirefuzz.sh --replay {d}   # every client file\n")
    return d


def load_records(path: Path) -> list[dict]:
    files = []
    if path.is_dir():
        if (path / "reproducer.json").exists():
            files = [path / "reproducer.json"]
        else:
            files = sorted(path.glob("client-*.jsonl"))
    else:
        files = [path]
    out = []
    for f in files:
        text = f.read_text()
        if f.suffix == ".json":
            d = json.loads(text)
            out += d if isinstance(d, list) else [d]
        else:
            out += [json.loads(line) for line in text.splitlines() if line.strip()]
    out = [d["example"] if "example" in d and "steps" not in d else d for d in out]
    if path.is_dir() and files and files[0].name.startswith("client-"):
        out.sort(key=lambda d: d.get("t_start") or 0)
    return out


def replay_one(target: Target, d: dict, timeout: float, read_scale: float = 1.0) -> dict:
    s = Script.from_json(d)
    return execute(target, s, time.monotonic() + timeout, random.Random(s.seed ^ 0x5A5A), read_scale)


def server_died(server, target: Target, grace: float = 25.0) -> bool:
    """After an input: did the process die? A crashing Swift process can live on for seconds
    while its backtracer runs, so a server that does not answer /health gets time to exit."""
    t = time.monotonic() + 0.2
    while time.monotonic() < t and server.alive():
        time.sleep(0.02)
    if not server.alive():
        return True
    try:
        if http_get(target.host, target.http_port, "/health", 3.0) == 200:
            return False
    except Exception:
        pass
    if not any(m in server.log_tail(200) for m in CRASH_MARKERS):
        grace = min(grace, 3.0)
    t = time.monotonic() + grace
    while time.monotonic() < t and server.alive():
        time.sleep(0.1)
    return not server.alive()


def triage(fz: Fuzzer, server: OwnServer, args, setup_target, budget: float, hang: bool = False) -> dict:
    """Replay the recorded inputs one after another on a fresh server, most suspicious first; when
    one kills it (or, for a hang, leaves it unable to answer the round trip), replay that one alone
    on fresh servers to confirm."""
    t_end = time.monotonic() + budget
    recs = sorted(fz.all_records(), key=lambda r: r.suspicion(fz.crash_at))
    recs = [r.to_json(fz.t0, fz.crash_at) for r in recs]
    result = {"tried": 0, "reproducer": None, "confirmed": 0, "note": "", "suspects": []}
    target = None
    since_restart = 0

    def fresh():
        server.kill()
        server.start()
        return setup_target(server, quiet=True)

    def confirm(j) -> int:
        n = 0
        for _ in range(2):
            try:
                t = fresh()
            except RuntimeError:
                break
            replay_one(t, j, args.case_timeout)
            if server_died(server, t):
                n += 1
            elif hang and not round_trip_ok(t):
                n += 1
        return n

    for j in recs:
        if time.monotonic() >= t_end:
            result["note"] = f"triage budget ({budget:.0f}s) used up after {result['tried']} of {len(recs)} inputs"
            break
        if target is None or not server.alive():
            try:
                target = fresh()
            except RuntimeError as e:
                result["note"] = f"restart failed: {e}"
                break
            since_restart = 0
        if j["transport"] == "mtls" and target.tls_ctx is None and j.get("mode") != "plain":
            continue
        result["tried"] += 1
        since_restart += 1
        replay_one(target, j, args.case_timeout, read_scale=0.3)
        died = server_died(server, target)
        stuck = hang and not died and not round_trip_ok(target)
        if not (died or stuck):
            continue
        rc = server.returncode() if died else None
        tail = server.log_tail(80)
        n = confirm(j)
        if n:
            result.update(reproducer=j, returncode=rc, confirmed=n, log_tail=tail,
                          note="left the server unresponsive" if stuck else "")
            break
        result["suspects"].append(j)
        target = None  # the server was restarted by confirm(); start afresh
        log(f"triage: {describe_record(j)[:120]} {'killed' if died else 'hung'} the server after "
            f"{since_restart - 1} earlier inputs, but not alone")
    if result["reproducer"] is None and not result["note"]:
        result["note"] = ("no single input kills a fresh server on its own (a race between clients, or state "
                          "built up by several inputs)")
    server.kill()
    return result


def round_trip_ok(target: Target) -> bool:
    for _ in range(2):
        c = round_trip_check(target, 0, 5.0)
        if c["routing"] and c["shadow"] and not c["error"]:
            return True
    return False


def describe_record(j: dict) -> str:
    steps = j["steps"]
    sends = [s for s in steps if s[0] in ("s", "w", "h")]
    first = base64.b64decode(sends[0][1])[:48].hex() if sends else ""
    total = sum(len(base64.b64decode(s[1])) for s in sends)
    return (f"case={j['case']} transport={j['transport']}{('/' + j['mode']) if j.get('mode') else ''} worker={j.get('worker')} "
            f"seq={j.get('seq')} steps={len(steps)} bytes={total} desc=[{j['desc'][:240]}] first-bytes={first}")


# ==========================================================================================
# main
# ==========================================================================================

def parse_args(argv):
    p = argparse.ArgumentParser(prog="wirefuzz", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--binary", type=Path, default=Path(os.environ.get("DROVER_BIN", DEFAULT_BINARY)),
                   help="drover binary to start (default $DROVER_BIN or .build/debug/drover); run from a private copy")
    p.add_argument("--wait-binary", type=float, default=600, help="seconds to wait for the binary to appear and run (default 600)")
    p.add_argument("--no-copy-binary", action="store_true", help="run the binary in place instead of a private copy")
    p.add_argument("--host", help="attach to a running server at this host (with --port)")
    p.add_argument("--port", type=int, help="MQTT TCP port of the attached server")
    p.add_argument("--http-port", type=int, help="HTTP port of the attached server (health, WebSocket, API)")
    p.add_argument("--mqtts-port", type=int, default=0, help="mutual-TLS port of the attached server")
    p.add_argument("--pid", type=int, help="PID of the attached server (crash detection)")
    p.add_argument("--data-dir", type=Path, help="attached server's data dir (admin-credentials, ca.pem)")
    p.add_argument("--log", type=Path, help="attached server's log file (for the report)")
    p.add_argument("--duration", type=float, default=60, help="seconds of fuzzing (default 60)")
    p.add_argument("--clients", type=int, default=32, help="concurrent client threads (default 32, at most 256)")
    p.add_argument("--seed", type=int, default=None, help="seed of every generator (default random; printed)")
    p.add_argument("--round-seconds", type=float, default=5, help="seconds between liveness/routing/shadow checks")
    p.add_argument("--check-timeout", type=float, default=10, help="seconds a check may take before it fails")
    p.add_argument("--case-timeout", type=float, default=10, help="upper bound for one input")
    p.add_argument("--keep", type=int, default=8, help="inputs remembered per client for the crash report")
    p.add_argument("--out", type=Path, default=Path("wirefuzz-out"), help="where crash/hang inputs go (default ./wirefuzz-out)")
    p.add_argument("--transports", default="tcp,ws,mtls", help="subset of tcp,ws,mtls (default all)")
    p.add_argument("--cases", default="", help=f"comma-separated subset of: {','.join(CASES)}")
    p.add_argument("--triage-seconds", type=float, default=90, help="own server: time to find the crashing input (0: off)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for drover serve")
    p.add_argument("--replay", type=Path, help="replay saved inputs (a .jsonl/.json file or a crash directory)")
    p.add_argument("--replay-concurrent", action="store_true", help="replay every client file in its own thread")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary data dir and full server log")
    p.add_argument("--signer", choices=["auto", "botocore", "builtin"], default="auto",
                   help="SigV4 for the API calls: botocore if importable (auto), or the built-in one")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1 << 31)
    a.cases = [c for c in a.cases.split(",") if c]
    for c in a.cases:
        if c not in CASES:
            p.error(f"unknown case {c!r}")
    a.transports = [t for t in a.transports.split(",") if t]
    if (a.host is None) != (a.port is None):
        p.error("--host and --port go together")
    if a.host and not a.http_port:
        p.error("--http-port is needed with --host (health checks, WebSocket)")
    a.clients = max(1, min(a.clients, 256))
    return a


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    workdir = Path(tempfile.mkdtemp(prefix="wirefuzz-"))
    env_extra = dict(kv.split("=", 1) for kv in args.env)
    own = args.host is None
    log(f"seed {args.seed}; work dir {workdir}")
    if own:
        ok, why = wait_for_binary(args.binary, args.wait_binary)
        if not ok:
            log(f"no usable server binary: {why}")
            print(f"RESULT rounds=0 inputs=0 crashes=0 hangs=0 transports= duration=0 error=no-binary")
            return 2
        server = OwnServer(args.binary, workdir, env_extra, not args.no_copy_binary)
    else:
        pid = args.pid or find_listener_pid(args.port)
        if pid:
            log(f"attached server: pid {pid}" + ("" if args.pid else f" (found listening on port {args.port})"))
        else:
            log("attached server: PID unknown (pass --pid): a crash will show up as failed checks (a hang)")
        server = AttachedServer(pid, args.data_dir, args.log)

    setup_notes: list[str] = []
    mtls_skip: list[str] = []

    def setup_target(srv, quiet=False) -> Target:
        if own:
            t = Target(HOST, srv.mqtt_port, srv.http_port, srv.mqtts_port)
            data_dir = srv.data_dir
        else:
            t = Target(args.host, args.port, args.http_port, args.mqtts_port)
            data_dir = args.data_dir
        creds = None
        if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY") and not own:
            creds = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        elif data_dir is not None:
            creds = read_credentials(Path(data_dir) / "admin-credentials")
        if creds is None:
            msg = "no API credentials (own server's admin-credentials, --data-dir, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            if not quiet:
                mtls_skip.append(msg)
            return t
        api = Api(f"http://{t.host}:{t.http_port}", *creds, signer=args.signer)
        ca = Path(data_dir) / "ca.pem" if data_dir else None
        try:
            notes, why = provision(api, t, workdir, ca)
        except (OSError, KeyError, ValueError, ssl.SSLError) as e:
            notes, why = [], f"provisioning failed: {e!r}"
        if not quiet:
            setup_notes.append(f"API signer: {api.signer}")
            setup_notes.extend(notes)
            if why:
                mtls_skip.append(why)
        return t

    started = time.monotonic()
    crash_tail = None
    try:
        if own:
            log(f"starting {args.binary} serve")
            server.start()
            log(f"server pid {server.pid}: mqtt {server.mqtt_port}, mqtts {server.mqtts_port}, http {server.http_port}, "
                f"data {server.data_dir}, log {server.log_path}")
        target = setup_target(server)
        for n in setup_notes:
            log(n)
        transports = [t for t in args.transports if t in ("tcp", "ws", "mtls")]
        if "mtls" in transports and target.tls_ctx is None:
            transports.remove("mtls")
            log(f"mTLS skipped: {'; '.join(mtls_skip) or 'not provisioned'}")
        if not transports:
            log("no transports left")
            return 2

        if args.replay:
            return run_replay(args, server, target, own)

        log(f"fuzzing for {args.duration:.0f}s with {args.clients} clients over {','.join(transports)}; "
            f"checks every {args.round_seconds:.0f}s")
        fz = Fuzzer(args, server, target, transports)
        res = fz.run()
        fuzz_elapsed = time.monotonic() - fz.t0
        failure = res["failure"]
        crashes = hangs = 0
        saved = None
        tri = None
        stop_info = None
        if failure:
            kind = failure["kind"]
            if kind == "crash":
                crashes = 1
                failure["how"] = signal_name(server.returncode())
            else:
                hangs = 1
            saved = save_failure(args.out, kind, fz, server, args, {"failure": failure})
            crash_tail = server.log_tail(60)
            log(f"{kind.upper()}: inputs saved to {saved}")
            if kind == "hang" and own:
                stop_info = server.stop()
            if own and args.triage_seconds > 0:
                if kind == "hang":
                    server.kill()
                log(f"triage: replaying the {len(fz.all_records())} recorded inputs one by one on fresh servers "
                    f"(budget {args.triage_seconds:.0f}s)")
                tri = triage(fz, server, args, setup_target, args.triage_seconds, hang=(kind == "hang"))
                if tri.get("reproducer"):
                    (saved / "reproducer.json").write_text(json.dumps(tri["reproducer"], indent=1) + "\n")
                    (saved / "reproducer-log-tail.txt").write_text(tri.get("log_tail", "") + "\n")
        elif own:
            stop_info = server.stop()
            rc, killed = stop_info
            if killed:
                log("the server did not stop within 10s of SIGTERM: killed (reported as a shutdown hang)")
            elif rc is not None and rc < 0 and -rc not in (signal.SIGTERM,):
                crashes = 1
                failure = {"kind": "crash", "how": f"during shutdown: {signal_name(rc)}"}
                saved = save_failure(args.out, "crash", fz, server, args, {"failure": failure})
        report(args, fz, res, failure, saved, tri, stop_info, transports, server, fuzz_elapsed, crash_tail)
        print(f"RESULT rounds={len(res['rounds'])} inputs={fz.inputs} crashes={crashes} hangs={hangs} "
              f"transports={','.join(transports)} duration={fuzz_elapsed:.0f}")
        return 1 if (crashes or hangs) else 0
    except RuntimeError as e:
        log(f"setup failed: {e}")
        print("RESULT rounds=0 inputs=0 crashes=0 hangs=0 transports= duration=0 error=setup")
        return 2
    finally:
        if own:
            server.kill()
        if args.keep_workdir:
            log(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_replay(args, server, target, own) -> int:
    recs = load_records(args.replay)
    log(f"replaying {len(recs)} inputs from {args.replay}" + (" concurrently per client" if args.replay_concurrent else ""))
    killer = None
    anomalies = 0
    if args.replay_concurrent:
        by_worker = collections.defaultdict(list)
        for j in recs:
            by_worker[j.get("worker", 0)].append(j)
        threads = [threading.Thread(target=lambda js=js: [replay_one(target, j, args.case_timeout) for j in js], daemon=True)
                   for js in by_worker.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.case_timeout * args.keep + 30)
        time.sleep(1.0)
        if not server.alive():
            killer = "concurrent replay"
    else:
        for i, j in enumerate(recs):
            if j["transport"] == "mtls" and target.tls_ctx is None and j.get("mode") != "plain":
                log(f"  [{i}] skipped (mTLS not available)")
                continue
            out = replay_one(target, j, args.case_timeout)
            server_died(server, target)
            status = "server DIED" if not server.alive() else ("closed by server" if out["server_closed"] else "ok")
            log(f"  [{i}] {describe_record(j)[:200]} -> {status}")
            for a in out["anomalies"]:
                anomalies += 1
                log(f"      ANOMALY: {a}; server sent: {next(iter(out.get('server_head', {}).values()), '')[:120]}")
            if not server.alive():
                killer = describe_record(j)
                break
    if killer:
        log(f"CRASH reproduced ({signal_name(server.returncode())}) by: {killer}")
        print("--- server log tail ---\n" + server.log_tail(60))
        print(f"RESULT rounds=0 inputs={len(recs)} crashes=1 hangs=0 transports=replay duration=0")
        return 1
    c = round_trip_check(target, 0, args.check_timeout)
    ok = c["routing"] and c["shadow"] and not c["error"]
    log(f"after the replay: server alive, round trip {'ok' if ok else 'FAILED: ' + str(c['error'])}")
    print(f"RESULT rounds=1 inputs={len(recs)} crashes=0 hangs={0 if ok else 1} transports=replay duration=0 "
          f"anomalies={anomalies}")
    return 0 if ok else 1


def report(args, fz: Fuzzer, res, failure, saved, tri, stop_info, transports, server, elapsed, crash_tail=None):
    rounds = res["rounds"]
    print("\n=============================== wirefuzz report ===============================")
    print(f"seed {args.seed}, {args.clients} clients, {elapsed:.1f}s of fuzzing, transports {','.join(transports)}; "
          f"server pid {fz.server_pid}")
    bi = getattr(server, "binary_identity", None)
    if bi and bi.get("sha256"):
        print(f"binary {bi['path']} ({bi['size']} bytes, modified {bi['mtime']}, sha256 {bi['sha256'][:16]}), run from a private copy")
        now = binary_state(Path(bi["path"]))
        if now is None or now[1] != bi["size"] or datetime.datetime.fromtimestamp(now[2] / 1e9).isoformat() != bi["mtime"]:
            print("  note: the binary at that path has been rebuilt since; findings apply to the copy's build")
    print(f"inputs {fz.inputs} ({fz.bytes_sent / 1e6:.1f} MB sent); by transport: "
          + ", ".join(f"{k} {v}" for k, v in sorted(fz.per_transport.items())))
    print("\ncase                 runs  closed-by-server  connect-failed  deliveries  top answers (D: DISCONNECT reason, C: CONNACK refusal)")
    for name in CASES:
        c = fz.per_case.get(name)
        if c:
            top = sorted(((int(k[7:]), v) for k, v in c.items() if k.startswith("reason:")), key=lambda kv: -kv[1])[:5]
            tops = " ".join((f"D{r:02x}" if r < 0x1000 else f"C{r & 0xFF:02x}") + f"x{v}" for r, v in top)
            print(f"  {name:18} {c['runs']:6}  {100 * c['server_closed'] / max(1, c['runs']):5.0f}%        "
                  f"{c['connect_failed']:6}     {c['deliveries']:8}    {tops}")
    if fz.reasons:
        disc = ", ".join(f"{r:#04x}x{n}" for r, n in sorted(fz.reasons.items()) if r < 0x1000)
        conn = ", ".join(f"{r & 0xFF:#04x}x{n}" for r, n in sorted(fz.reasons.items()) if r >= 0x1000)
        print(f"\nserver DISCONNECT reasons: {disc or '-'}\nrefusing CONNACK codes: {conn or '-'}")
    if fz.connect_failures:
        print("connect failures: " + "; ".join(f"{k} x{v}" for k, v in fz.connect_failures.most_common(4)))
    ok_rounds = [r for r in rounds if Fuzzer.check_ok(r)]
    hm = [r["health_ms"] for r in ok_rounds if r.get("health_ms") is not None]
    rm = [r["routing_ms"] for r in ok_rounds if r.get("routing_ms") is not None]
    sm = [r["shadow_ms"] for r in ok_rounds if r.get("shadow_ms") is not None]
    answers = collections.Counter(r.get("shadow") for r in ok_rounds)
    print(f"\nrounds {len(rounds)}: {len(ok_rounds)} ok; health max {max(hm, default=0)}ms, routing max {max(rm, default=0)}ms, "
          f"shadow max {max(sm, default=0)}ms; shadow answers {dict(answers)}")
    rss = [r["rss_kb"] for r in rounds if r.get("rss_kb")]
    if rss:
        print(f"server RSS: first {fmt_kb(rss[0])}, max {fmt_kb(max(rss))}, last {fmt_kb(rss[-1])}")
    for s in res["stalls"]:
        print(f"STALL at {s['t']}s (round {s['round']}): {s['first']}; answered once the fuzzers paused")
    if fz.anomalies:
        print("\nprotocol anomalies in what the server sent (not counted as failures):")
        for a, slot in sorted(fz.anomalies.items(), key=lambda kv: -kv[1]["count"]):
            ex = slot["example"]
            print(f"  x{slot['count']:<5} {a}\n         e.g. {describe_record(ex.to_json(fz.t0, None))[:300]}")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            with open(args.out / f"anomalies-seed{args.seed}.jsonl", "w") as f:
                for a, slot in fz.anomalies.items():
                    f.write(json.dumps({"anomaly": a, "count": slot["count"], "example": slot["example"].to_json(fz.t0, None)}) + "\n")
            print(f"  (examples saved to {args.out / f'anomalies-seed{args.seed}.jsonl'}; replay with --replay)")
        except OSError:
            pass
    for e in fz.internal_errors:
        print(f"\nfuzzer internal error (a generator bug, input skipped): {e}")
    if stop_info:
        rc, killed = stop_info
        print(f"\nshutdown: {'did not stop within 10s of SIGTERM, SIGKILLed' if killed else signal_name(rc)}")
    if failure:
        print(f"\n*** {failure['kind'].upper()} ***  {failure.get('how') or ''} {failure.get('check') or ''}")
        print(f"saved to {saved}")
        inflight = [r for r in fz.all_records()
                    if fz.crash_at and r.t_start <= fz.crash_at and (r.t_end is None or r.t_end >= fz.crash_at - 0.25)]
        print(f"inputs in flight at that moment ({len(inflight)}):")
        for r in sorted(inflight, key=lambda r: r.suspicion(fz.crash_at))[:12]:
            print("  " + describe_record(r.to_json(fz.t0, fz.crash_at))[:300])
        if tri:
            if tri.get("reproducer") and failure["kind"] == "hang":
                print(f"\nTRIAGE: {tri['note']} after replaying alone:\n  " + describe_record(tri["reproducer"]))
                print(f"  saved as {saved}/reproducer.json; replay: scripts/wirefuzz.sh --replay {saved}/reproducer.json")
            elif tri.get("reproducer"):
                print(f"\nTRIAGE: reproduced alone ({tri['confirmed']}/2 fresh servers, {signal_name(tri.get('returncode'))}) by:\n  "
                      + describe_record(tri["reproducer"]))
                print(f"  saved as {saved}/reproducer.json; replay: scripts/wirefuzz.sh --replay {saved}/reproducer.json")
            else:
                print(f"\nTRIAGE: {tri['tried']} inputs replayed one by one; no single one reproduces it: {tri['note']}")
                for j in tri.get("suspects", [])[:3]:
                    print("  suspect (failed the server after earlier inputs, not alone): " + describe_record(j)[:260])
                print(f"  try: scripts/wirefuzz.sh --replay {saved} --replay-concurrent")
        print("\n--- server log tail (at the failure) ---")
        print(crash_tail or server.log_tail(60))
    print("===============================================================================")


if __name__ == "__main__":
    sys.exit(main())

"""Publishes N numbered QoS 1 messages to a topic and waits for every PUBACK (bench/startup.sh)."""
import socket
import struct
import sys
import time

host, port, topic, n = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), int(sys.argv[4])


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


s = socket.create_connection((host, port))
cid = b"fill-%d" % time.time_ns()
s.sendall(packet(0x10, struct.pack("!H", 4) + b"MQTT" + bytes([4, 0x02]) + struct.pack("!H", 60)
                 + struct.pack("!H", len(cid)) + cid))
buf = b""
while len(buf) < 4:
    buf += s.recv(4096)
assert buf[:2] == b"\x20\x02" and buf[3] == 0, f"CONNACK {buf[:4]!r}"
buf = buf[4:]
window, sent, acked, pid = 1000, 0, 0, 0
t0 = time.monotonic()
while acked < n:
    out = []
    while sent < n and sent - acked < window:
        pid = pid % 65535 + 1
        body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", pid) + b"%08d" % sent
        out.append(packet(0x32, body))
        sent += 1
    if out:
        s.sendall(b"".join(out))
    chunk = s.recv(65536)
    if not chunk:
        sys.exit(f"the broker closed the connection after {acked} PUBACKs")
    buf += chunk
    while len(buf) >= 4 and buf[0] == 0x40:
        acked += 1
        buf = buf[4:]
    if buf and buf[0] != 0x40:
        sys.exit(f"unexpected packet {buf[:8]!r}")
s.sendall(b"\xe0\x00")
s.close()
print(f"{acked} acknowledged in {time.monotonic() - t0:.1f} s", file=sys.stderr)

"""Durable broker state across restarts and `kill -9` (storage backend `sqlite`).

Every test here drives the real `drover serve` binary on a data directory that outlives
the process: `DurableServer` restarts it on the SAME data directory and the SAME ports,
and kills it with SIGKILL by its own PID (nothing else is ever signalled).

Server contract under test (environment of `drover serve`):
  DROVER_STORAGE_BACKEND=sqlite|memory     always set explicitly here
  DROVER_STORAGE_DURABILITY=fsync|normal
  the database is <data dir>/broker.sqlite

What must survive a restart and `kill -9`: persistent sessions with their subscriptions,
queued QoS 1/2 messages, in-flight outbound messages, inbound QoS 2 packet ids not yet
released, retained messages, pending delayed wills, session expiry deadlines. Once the
broker sent PUBACK (QoS 1) / PUBREC (QoS 2) the message is durable for every matching
persistent session: after a crash each of them receives it at least once (QoS 1) or
exactly once (QoS 2). A corrupt database is a clear startup error, never an empty broker.

The crash loop is random; its seed is printed and can be fixed with DROVER_E2E_SEED.
All sockets go to 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections import Counter, OrderedDict

import pytest

import conftest as e2e
from clients import Paho, PacketTypes, SubscribeOptions, props, uid, wait_until
from mqtt_raw import (DISCONNECT, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,
                      P_MESSAGE_EXPIRY, P_RECEIVE_MAXIMUM, P_SESSION_EXPIRY, Closed, Packet, RawClient, ack_packet,
                      disconnect_packet, disconnect_reason, parse_publish, publish_packet)

HOST = e2e.HOST
DB_NAME = "broker.sqlite"
SQLITE = {"DROVER_STORAGE_BACKEND": "sqlite", "DROVER_STORAGE_DURABILITY": "fsync"}


# ---------------------------------------------------------------------------------------
# A server that restarts on the same data directory and ports
# ---------------------------------------------------------------------------------------

class DurableServer(e2e.DroverServer):
    """conftest's DroverServer (same spawn, environment handling, log and readiness check),
    except that the ports picked at the first start are kept for every restart, and
    `kill9()` sends SIGKILL to this server's own process."""

    def __init__(self, workdir, env):
        super().__init__(workdir, env)
        self.kills = 0
        self.starts = 0

    @property
    def db_path(self):
        return self.data_dir / DB_NAME

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self) -> "DurableServer":
        if not self.mqtt_port:  # first start: conftest picks free ports (and retries if taken)
            super().start()
        else:
            last = ""
            for _attempt in range(6):
                offset = self._log_size()
                self._spawn()
                ok, last = self._wait_ready()
                if ok:
                    break
                self._kill_now()
                if "address already in use" not in self.log_since(offset).lower():
                    break
                time.sleep(0.5)  # a port of ours still in TIME_WAIT or briefly taken: same ports again
            else:
                ok = False
            if not ok:
                raise AssertionError(f"restart on the same data dir and ports failed: {last}\n"
                                     f"--- log tail ---\n{self.log_tail()}")
        self.starts += 1
        self.expect_alive = True
        return self

    def kill9(self) -> None:
        """SIGKILL this server's own PID (no graceful shutdown, no flush)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server died on its own (exit code {self.proc.returncode}) before "
                                 f"kill #{self.kills + 1}\n{self.log_tail()}")
        self.expect_alive = False
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.returncode == -signal.SIGKILL, self.proc.returncode
        self.kills += 1

    def restart_after_kill9(self, down_for: float = 0.0) -> None:
        self.kill9()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    def mqtt_accepts(self) -> bool:
        try:
            with socket.create_connection((HOST, self.mqtt_port), timeout=1):
                return True
        except OSError:
            return False


@pytest.fixture
def durable(tmp_path_factory):
    """`durable(**env)` starts a DurableServer with the sqlite backend (fsync) unless the
    test's env says otherwise. Every server is stopped after the test."""
    made: list[DurableServer] = []

    def make(**env) -> DurableServer:
        full = dict(SQLITE)
        full.update({k: str(v) for k, v in env.items()})
        if full["DROVER_STORAGE_BACKEND"] != "sqlite" and "DROVER_STORAGE_DURABILITY" not in env:
            del full["DROVER_STORAGE_DURABILITY"]
        srv = DurableServer(tmp_path_factory.mktemp("durable"), full)
        e2e._ACTIVE.append(srv)  # log tail attached to a failing test's report
        made.append(srv)
        srv.start()
        if full["DROVER_STORAGE_BACKEND"] == "sqlite":
            assert srv.db_path.exists(), (
                f"DROVER_STORAGE_BACKEND=sqlite but no {DB_NAME} in the data dir {srv.data_dir} after "
                f"startup: this binary ({e2e.drover_bin()}) does not have the sqlite backend "
                f"(unknown DROVER_* variables are ignored)\n{srv.log_tail()}")
        return srv

    yield make
    dead = [s for s in made if s.expect_alive and not s.alive()]
    for srv in made:
        srv.stop()
        if srv in e2e._ACTIVE:
            e2e._ACTIVE.remove(srv)
    if dead:
        s = dead[0]
        pytest.fail(f"server ({s.describe()}) died, exit code {s.exit_code}\n{s.log_tail()}")


# ---------------------------------------------------------------------------------------
# A raw MQTT client with a persistent session
# ---------------------------------------------------------------------------------------

def _ack_fields(p: Packet) -> tuple[int, int]:
    """(packet id, reason code) of PUBACK/PUBREC/PUBREL/PUBCOMP (reason 0 when omitted)."""
    (pid,) = struct.unpack_from("!H", p.body, 0)
    return pid, (p.body[2] if len(p.body) > 2 else 0)


class Delivery:
    """A message as the application saw it, with the packet id and the connection (1 = first)
    it came on, for diagnostics."""
    __slots__ = ("payload", "qos", "dup", "pid", "conn", "t")

    def __init__(self, payload: bytes, qos: int, dup: bool, pid: int | None, conn: int):
        self.payload, self.qos, self.dup, self.pid, self.conn = payload, qos, dup, pid, conn
        self.t = time.monotonic()

    def __repr__(self) -> str:
        return f"<{self.payload!r} qos {self.qos} pid {self.pid} dup {int(self.dup)} conn #{self.conn}>"


class DurableClient:
    """Raw MQTT client (5.0, or 3.1.1 with clean session 0) with a persistent session.

    As a receiver it keeps its side of the QoS 2 state across reconnects like a real
    client must: a QoS 2 PUBLISH whose packet id awaits PUBREL is acknowledged again
    but not delivered again. `deliveries` is what the application saw, in order.
    """

    def __init__(self, port: int, client_id: str | None = None, version: int = 5,
                 session_expiry: int = 3600, receive_maximum: int | None = None):
        self.port = port
        self.client_id = client_id or uid("dur")
        self.version = version
        self.session_expiry = session_expiry
        self.receive_maximum = receive_maximum
        self.c: RawClient | None = None
        self.pending_qos2: dict[int, bytes] = {}
        self.deliveries: list[Delivery] = []
        self.anomalies: list[str] = []
        self.server_disconnects: list[int] = []
        self.session_lost = 0
        self.connects = 0
        self._lock = threading.Lock()

    @property
    def v5(self) -> bool:
        return self.version == 5

    # -- connection ----------------------------------------------------------------------
    def connect(self, clean_start: bool, timeout: float = 5.0):
        c = RawClient(self.port, timeout=timeout)
        try:
            kw = {}
            if self.v5:
                p = [(P_SESSION_EXPIRY, self.session_expiry)]
                if self.receive_maximum:
                    p.append((P_RECEIVE_MAXIMUM, self.receive_maximum))
                kw["props"] = p
            # MQTT 3.1.1: a session is persistent only with clean session 0 (ids are unique here).
            clean = clean_start if self.v5 else False
            ack = c.connect(self.client_id, version=self.version, clean=clean, keepalive=60,
                            timeout=timeout, **kw)
        except BaseException:
            c.abort()
            raise
        if ack.reason != 0:
            c.close()
            raise AssertionError(f"{self.client_id}: CONNACK refused: {ack}")
        if not ack.session_present:
            self.pending_qos2.clear()  # no session on the server: the client discards its state too
        self.connects += 1
        self.c = c
        return ack

    def connect_retry(self, clean_start: bool, timeout: float = 15.0):
        """Connect, retrying while the server is (re)starting."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.connect(clean_start, timeout=2.0)
            except (OSError, Closed, TimeoutError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def subscribe(self, flt: str, qos: int) -> None:
        codes = self.c.subscribe([(flt, qos)], v5=self.v5)
        assert codes == [qos], f"{self.client_id}: SUBACK {codes} for {flt!r} at QoS {qos}"

    def disconnect(self) -> None:
        if self.c is not None:
            self.c.try_send(disconnect_packet(v5=self.v5))
            self.c.close()
            self.c = None

    def abort(self) -> None:
        if self.c is not None:
            self.c.abort()
            self.c = None

    close = abort  # for the `clients` fixture

    # -- receiving -----------------------------------------------------------------------
    def _deliver(self, pub) -> None:
        with self._lock:
            self.deliveries.append(Delivery(pub.payload, pub.qos, pub.dup, pub.pid, self.connects))

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def payloads(self) -> list[bytes]:
        return [d.payload for d in self.snapshot()]

    def handle(self, p: Packet) -> None:
        """Handle one packet from the server; Closed on a server DISCONNECT."""
        if p.type == PUBLISH:
            pub = parse_publish(p, v5=self.v5)
            if pub.qos == 2:
                if pub.pid in self.pending_qos2:
                    if self.pending_qos2[pub.pid] != pub.payload:
                        # A new message under a packet id still awaiting PUBREL: indistinguishable
                        # from a resend for a client, which therefore does not deliver it.
                        self.anomalies.append(
                            f"conn #{self.connects}: QoS 2 packet id {pub.pid} (dup {int(pub.dup)}) reused "
                            f"for {pub.payload!r} before PUBREL of {self.pending_qos2[pub.pid]!r}")
                else:
                    self.pending_qos2[pub.pid] = pub.payload
                    self._deliver(pub)
                self.c.send(ack_packet(PUBREC, pub.pid))
            else:
                self._deliver(pub)
                if pub.qos == 1:
                    self.c.send(ack_packet(PUBACK, pub.pid))
        elif p.type == PUBREL:
            pid, _ = _ack_fields(p)
            self.pending_qos2.pop(pid, None)
            self.c.send(ack_packet(PUBCOMP, pid))
        elif p.type == DISCONNECT:
            self.server_disconnects.append(disconnect_reason(p) if self.v5 else 0)
            raise Closed()
        elif p.type != PINGRESP:
            self.anomalies.append(f"unexpected packet {p!r}")

    def pump(self, seconds: float) -> None:
        """Handle whatever arrives for `seconds`. Raises Closed/OSError when the connection is gone."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                p = self.c.read_packet(remaining)
            except TimeoutError:
                return
            self.handle(p)

    def pump_until(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not pred():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.pump(min(0.1, remaining))
        return True


def publish_all(port: int, topic: str, payloads: list[bytes], qos: int = 1, window: int = 10) -> list[int]:
    """Publish with a raw MQTT 5 client, at most `window` unacknowledged; returns each
    message's PUBACK/PUBREC reason code (QoS 2 flows are completed)."""
    c = RawClient(port)
    try:
        assert c.connect(uid("pub")).reason == 0
        reasons: dict[int, int] = {}
        open_: set[int] = set()
        nxt = 0
        deadline = time.monotonic() + 30
        while len(reasons) < len(payloads) or open_:
            while nxt < len(payloads) and len(open_) < window:
                pid = nxt + 1
                c.send(publish_packet(topic, payloads[nxt], qos=qos, pid=pid))
                open_.add(pid)
                nxt += 1
            p = c.read_packet(max(0.01, deadline - time.monotonic()))
            pid, reason = _ack_fields(p)
            if p.type == PUBACK and qos == 1 or p.type == PUBREC and qos == 2:
                reasons[pid] = reason
                if qos == 1 or reason >= 0x80:
                    open_.discard(pid)
                else:
                    c.send(ack_packet(PUBREL, pid))
            elif p.type == PUBCOMP:
                open_.discard(pid)
            else:
                raise AssertionError(f"unexpected {p!r}")
        c.try_send(disconnect_packet())
        return [reasons[i + 1] for i in range(len(payloads))]
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# 1. Crash loop
# ---------------------------------------------------------------------------------------

class CrashPublisher:
    """Publishes numbered messages (odd numbers QoS 1, even QoS 2) from a persistent session,
    at most WINDOW unacknowledged, and survives server crashes: after each reconnect it
    resends every unacknowledged PUBLISH (DUP=1, same packet id) and every PUBREL awaiting
    PUBCOMP. A number counts as acknowledged once PUBACK (QoS 1) or PUBREC (QoS 2) arrived
    with a success reason code. Packet ids are reused from a small range (1..ID_SPACE) as
    soon as they are free, as the protocol allows. At most RATE new messages a second, so
    that the final drain stays short."""

    WINDOW = 20
    ID_SPACE = 200
    RATE = 300.0

    def __init__(self, port: int, topic: str):
        self.port = port
        self.topic = topic
        self.client_id = uid("crash-pub")
        self.c: RawClient | None = None
        self.unacked: OrderedDict[int, list] = OrderedDict()  # pid -> [seq, qos, "pub" | "rel"]
        self.sent: dict[int, int] = {}  # seq -> qos
        self.acked: dict[int, int] = {}  # seq -> qos
        self.refused: dict[int, int] = {}  # seq -> reason code
        self.pubcomp_not_found = 0
        self.server_disconnects: list[int] = []
        self.anomalies: list[str] = []
        self.session_lost = 0
        self.connects = 0
        self.next_seq = 1
        self.next_pid = 1
        # Diagnostics: what happened to each number ("c3" = on the 3rd connection), and which
        # number used each packet id before.
        self.events: dict[int, list[str]] = {}
        self.previous_user: dict[int, int] = {}
        self._last_user: dict[int, int] = {}
        self.sending = threading.Event()
        self.sending.set()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._due = time.monotonic()

    @staticmethod
    def payload(seq: int) -> bytes:
        return str(seq).encode()

    def _alloc_pid(self) -> int:
        for _ in range(self.ID_SPACE):
            pid = self.next_pid
            self.next_pid = pid % self.ID_SPACE + 1
            if pid not in self.unacked:
                return pid
        raise AssertionError("no free packet id")

    def _connect(self) -> None:
        c = RawClient(self.port, timeout=2.0)
        try:
            ack = c.connect(self.client_id, version=5, clean=self.connects == 0, keepalive=60,
                            props=[(P_SESSION_EXPIRY, 3600)], timeout=2.0)
            if ack.reason != 0:
                self.anomalies.append(f"CONNACK reason 0x{ack.reason:02x}")
                raise Closed()
            if self.connects > 0 and not ack.session_present:
                self.session_lost += 1
            # Resume the session: unacknowledged PUBLISHes again with DUP, PUBRELs again.
            for pid, (seq, qos, stage) in self.unacked.items():
                if stage == "pub":
                    c.send(publish_packet(self.topic, self.payload(seq), qos=qos, pid=pid, dup=True))
                else:
                    c.send(ack_packet(PUBREL, pid))
                self.events[seq].append(f"c{self.connects + 1} resent {'PUBLISH' if stage == 'pub' else 'PUBREL'}")
        except BaseException:
            c.abort()
            raise
        self.connects += 1
        self.c = c

    def _publish_new(self) -> None:
        seq = self.next_seq
        self.next_seq += 1
        qos = 1 if seq % 2 else 2
        pid = self._alloc_pid()
        self.unacked[pid] = [seq, qos, "pub"]
        self.sent[seq] = qos
        self.events[seq] = [f"c{self.connects} PUBLISH pid {pid}"]
        if pid in self._last_user:
            self.previous_user[seq] = self._last_user[pid]
        self._last_user[pid] = seq
        self.c.send(publish_packet(self.topic, self.payload(seq), qos=qos, pid=pid))

    def _handle(self, p: Packet) -> None:
        if p.type == DISCONNECT:
            self.server_disconnects.append(disconnect_reason(p))
            raise Closed()
        if p.type not in (PUBACK, PUBREC, PUBCOMP):
            self.anomalies.append(f"unexpected {p!r}")
            return
        pid, reason = _ack_fields(p)
        entry = self.unacked.get(pid)
        if entry is not None:
            name = {PUBACK: "PUBACK", PUBREC: "PUBREC", PUBCOMP: "PUBCOMP"}[p.type]
            self.events[entry[0]].append(f"c{self.connects} {name} 0x{reason:02x}")
        if p.type == PUBACK:
            if entry is None or entry[1] != 1:
                self.anomalies.append(f"PUBACK for packet id {pid} not awaiting one ({entry})")
                return
            del self.unacked[pid]
            if reason < 0x80:
                self.acked[entry[0]] = 1
            else:
                self.refused[entry[0]] = reason
        elif p.type == PUBREC:
            if entry is None or entry[1] != 2:
                self.anomalies.append(f"PUBREC for packet id {pid} not awaiting one ({entry})")
                return
            if reason >= 0x80:
                del self.unacked[pid]
                self.refused[entry[0]] = reason
                return
            self.acked[entry[0]] = 2  # PUBREC is the durability point of QoS 2
            entry[2] = "rel"
            self.c.send(ack_packet(PUBREL, pid))
        else:  # PUBCOMP
            if entry is None or entry[2] != "rel":
                self.anomalies.append(f"PUBCOMP for packet id {pid} not awaiting one ({entry})")
                return
            if reason == 0x92:
                self.pubcomp_not_found += 1  # e.g. PUBREL done before a crash, PUBCOMP lost with it
            del self.unacked[pid]

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.c is None:
                    try:
                        self._connect()
                    except (OSError, Closed, TimeoutError):
                        time.sleep(0.05)
                    continue
                try:
                    now = time.monotonic()
                    self._due = max(self._due, now - 0.1)  # bursts of at most 0.1 s worth
                    while self.sending.is_set() and len(self.unacked) < self.WINDOW and self._due <= now:
                        self._publish_new()
                        self._due += 1.0 / self.RATE
                    try:
                        p = self.c.read_packet(0.02)
                    except TimeoutError:
                        continue
                    self._handle(p)
                except (OSError, Closed):
                    self.c.abort()
                    self.c = None
        except BaseException as ex:  # surfaced by the test
            self.error = ex
        finally:
            if self.c is not None:
                self.c.abort()


class CrashSubscriber:
    """Runs a DurableClient subscribed at QoS 2: online while `online` is set (reconnecting
    after every crash, clean start 0), offline otherwise (by DISCONNECT or by dropping the
    socket, as `offline_by` says)."""

    def __init__(self, client: DurableClient, topic: str):
        self.d = client
        self.topic = topic
        self.online = threading.Event()
        self.online.set()
        self.offline_by = "disconnect"
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        d = self.d
        try:
            while not self.stop.is_set():
                if not self.online.is_set():
                    if d.c is not None:
                        if self.offline_by == "disconnect":
                            d.disconnect()
                        else:
                            d.abort()
                    self.online.wait(0.05)
                    continue
                if d.c is None:
                    try:
                        ack = d.connect(clean_start=False, timeout=2.0)
                        if not ack.session_present:
                            d.session_lost += 1
                            d.subscribe(self.topic, 2)  # keep going, to report everything
                    except (OSError, Closed, TimeoutError):
                        d.abort()
                        time.sleep(0.05)
                    continue
                try:
                    d.pump(0.1)
                except (OSError, Closed):
                    d.abort()
        except BaseException as ex:
            self.error = ex
        finally:
            d.abort()


def test_crash_loop_no_acknowledged_message_lost(durable):
    t0 = time.monotonic()
    seed = int(os.environ.get("DROVER_E2E_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    print(f"crash loop seed {seed} (DROVER_E2E_SEED={seed} reproduces the schedule)")
    # A large queue bound: an offline subscriber's queue must not overflow (by design, a full
    # queue drops messages, which is not what this test is about).
    srv = durable(DROVER_STORAGE_DURABILITY="fsync", DROVER_LIMITS_MAX_QUEUED_MESSAGES=1_000_000)
    topic = f"crash/{uuid.uuid4()}"

    subc = DurableClient(srv.mqtt_port, uid("crash-sub"), session_expiry=3600, receive_maximum=64)
    subc.connect(clean_start=True)
    subc.subscribe(topic, 2)
    sub = CrashSubscriber(subc, topic)
    pub = CrashPublisher(srv.mqtt_port, topic)
    threads = [threading.Thread(target=sub.run, daemon=True, name="crash-sub"),
               threading.Thread(target=pub.run, daemon=True, name="crash-pub")]
    for t in threads:
        t.start()

    kills_planned = 12
    try:
        for i in range(kills_planned):
            time.sleep(rng.uniform(0.3, 2.0))
            # The subscriber is away across kills 3-5 (left with DISCONNECT) and 8-9 (socket
            # dropped); it leaves a little before a kill and comes back just before another.
            if i in (2, 7):
                sub.offline_by = "disconnect" if i == 2 else "abort"
                sub.online.clear()
                time.sleep(rng.uniform(0.1, 0.5))
            elif i in (5, 9):
                sub.online.set()
            srv.restart_after_kill9(down_for=rng.uniform(0.0, 0.3))
            assert pub.error is None and sub.error is None, (pub.error, sub.error)

        # Stop publishing; let the publisher finish its open flows, then crash once more.
        pub.sending.clear()
        settled = wait_until(lambda: not pub.unacked or pub.error is not None, 20)
        pub.stop.set()
        threads[1].join(10)
        sub.online.set()
        srv.restart_after_kill9(down_for=0.2)

        acked = dict(pub.acked)
        # Drain: every acknowledged number must arrive; then quiet for 2 s to catch late duplicates.
        wait_until(lambda: set(map(CrashPublisher.payload, acked)) <= set(subc.payloads())
                   or sub.error is not None, 60, interval=0.1)
        def quiet() -> bool:
            s = subc.snapshot()
            return not s or time.monotonic() - s[-1].t > 2.0
        time.sleep(2.0)
        wait_until(quiet, 15, interval=0.1)
    finally:
        sub.stop.set()
        pub.stop.set()
        for t in threads:
            t.join(10)
    elapsed = time.monotonic() - t0

    assert pub.error is None, f"publisher thread failed: {pub.error!r}"
    assert sub.error is None, f"subscriber thread failed: {sub.error!r}"
    assert not any(t.is_alive() for t in threads), "client threads did not stop"

    deliveries = subc.snapshot()
    counts = Counter(int(d.payload) for d in deliveries)
    received = set(counts)
    sent = pub.sent
    qos1_dups = sum(n - 1 for s, n in counts.items() if sent.get(s) == 1)
    qos2_dups = {s: n for s, n in counts.items() if sent.get(s) == 2 and n > 1}
    missing = sorted(set(acked) - received)
    summary = (f"published {len(sent)}, acknowledged {len(acked)} "
               f"(QoS 1 {sum(q == 1 for q in acked.values())}, QoS 2 {sum(q == 2 for q in acked.values())}), "
               f"refused {len(pub.refused)}, received {len(received)} distinct / {len(deliveries)} deliveries, "
               f"QoS 1 dups {qos1_dups}, QoS 2 dups {sum(n - 1 for n in qos2_dups.values())}, "
               f"kills {srv.kills}, publisher connects {pub.connects}, subscriber connects {subc.connects}, "
               f"PUBCOMP 0x92 {pub.pubcomp_not_found}, open flows at the end {len(pub.unacked)} "
               f"(settled={settled}), seed {seed}, {elapsed:.1f} s")
    print(summary)
    if pub.anomalies or subc.anomalies:
        print("publisher anomalies:", pub.anomalies[:20])
        print("subscriber anomalies:", subc.anomalies[:20])

    assert srv.kills >= 10, summary
    assert len(acked) >= 100 and any(q == 2 for q in acked.values()), \
        f"too little traffic to mean anything: {summary}"
    def history(numbers) -> str:
        return "; ".join(f"{n}: {[d for d in deliveries if int(d.payload) == n]}" for n in list(numbers)[:10])

    def pub_history(n: int) -> str:
        text = f"{n}: {pub.events.get(n)}"
        if n in pub.previous_user:  # the number that used the same packet id before
            prev = pub.previous_user[n]
            text += f" (same packet id before: {prev}: {pub.events.get(prev)})"
        return text

    problems = []
    if missing:
        problems.append(f"{len(missing)} acknowledged messages never reached the persistent subscriber, "
                        f"e.g. {missing[:20]} (QoS {[sent[m] for m in missing[:20]]}); publisher side "
                        f"(cN = its Nth connection; a kill separates connections): "
                        + "; ".join(pub_history(m) for m in missing[:5]))
    if qos2_dups:
        problems.append(f"QoS 2 messages delivered more than once: {dict(list(qos2_dups.items())[:20])}; "
                        f"deliveries: {history(qos2_dups)}")
    if subc.anomalies:
        problems.append(f"subscriber saw: {subc.anomalies[:10]}")
    assert not problems, "\n".join(problems + [summary])
    assert received <= set(sent), f"received numbers never published: {sorted(received - set(sent))[:20]}"
    wrong_qos = [(int(d.payload), d.qos) for d in deliveries if d.qos != sent[int(d.payload)]]
    assert not wrong_qos, f"delivered at another QoS than published (number, qos): {wrong_qos[:20]}"
    assert pub.session_lost == 0 and subc.session_lost == 0, \
        (f"a session with Session Expiry 3600 was gone after a restart (CONNACK session present 0): "
         f"publisher {pub.session_lost} times, subscriber {subc.session_lost} times: {summary}")
    kicked = [r for r in pub.server_disconnects + subc.server_disconnects if r >= 0x80]
    assert not kicked, f"the server disconnected a well-behaved client with reason codes {kicked}"
    assert srv.alive(), "server not running at the end"
    assert elapsed < 180, f"crash loop took {elapsed:.0f} s (budget 180 s)"


# ---------------------------------------------------------------------------------------
# 2. Retained messages
# ---------------------------------------------------------------------------------------

def test_retained_survives_kill9(durable, clients):
    srv = durable()
    base = uid("ret")
    pub = Paho(srv.mqtt_port)
    clients.append(pub)
    pub.connect()

    # A retained message that expires 2 s after publication: retained now, gone after the restart.
    pub.publish(f"{base}/short", b"short-lived", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=2))
    t_short = time.monotonic()
    check = Paho(srv.mqtt_port)
    clients.append(check)
    check.connect()
    check.subscribe(f"{base}/short", qos=1)
    got = check.wait_messages(1, 2)
    assert [(m.payload, m.retain) for m in got] == [(b"short-lived", True)], \
        "the short-lived retained message was not retained in the first place"
    check.disconnect()

    user = [("origin", "sensor-7"), ("k", "ü")]
    pub.publish(f"{base}/a", b"alpha", qos=1, retain=True)
    pub.publish(f"{base}/b", b"bravo", qos=2, retain=True)
    pub.publish(f"{base}/c", b'{"t": 21.5}', qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, ContentType="application/json",
                                 UserProperty=user, MessageExpiryInterval=3600))
    srv.kill9()  # right after the last acknowledgement
    pub.stop()
    time.sleep(max(0.0, t_short + 3.2 - time.monotonic()))
    srv.start()

    sub = Paho(srv.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(f"{base}/#", qos=2)
    sub.wait_messages(3, 5)
    time.sleep(1.0)  # anything else (the expired one) would arrive meanwhile
    got = {m.topic: m for m in sub.received()}
    assert sorted(got) == [f"{base}/a", f"{base}/b", f"{base}/c"], \
        f"retained topics after kill -9 and restart: {sorted(got)} (short-lived must be gone, 3 must remain)"
    assert len(sub.received()) == 3, [m.topic for m in sub.received()]
    for topic, payload, qos in [("a", b"alpha", 1), ("b", b"bravo", 2), ("c", b'{"t": 21.5}', 1)]:
        m = got[f"{base}/{topic}"]
        assert m.payload == payload and m.retain and m.qos == qos, \
            (topic, m.payload, m.retain, m.qos)
    c = got[f"{base}/c"]
    assert c.prop("ContentType") == "application/json"
    assert c.prop("UserProperty") == user, "user properties lost or changed by the restart"
    left = c.prop("MessageExpiryInterval")
    assert left is not None and 3500 <= left <= 3600, f"MessageExpiryInterval after restart: {left}"


# ---------------------------------------------------------------------------------------
# 3. Delayed will
# ---------------------------------------------------------------------------------------

def test_delayed_will_survives_restart(durable, clients):
    srv = durable()
    topic = uid("will") + "/durable"
    c = Paho(srv.mqtt_port, will=dict(topic=topic, payload=b"gone-for-good", qos=1, retain=False,
                                      properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=3)))
    clients.append(c)
    c.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    t_drop = time.monotonic()
    c.drop()  # no DISCONNECT: the broker records a will due in 3 s
    time.sleep(0.4)
    srv.kill9()  # within 1 s: the will is pending, not published yet
    srv.start()
    t_restart = time.monotonic()

    w = Paho(srv.mqtt_port)
    clients.append(w)
    w.connect()
    w.subscribe(topic, qos=1)
    msgs = w.wait_messages(1, 8 - (time.monotonic() - t_restart))
    assert len(msgs) == 1, "the pending delayed will was not published after kill -9 and restart"
    m = msgs[0]
    assert m.payload == b"gone-for-good" and m.qos == 1
    assert m.t - t_drop >= 2.0, f"will published {m.t - t_drop:.2f} s after the drop: the 3 s delay was not honoured"
    assert m.t - t_restart <= 8.0
    time.sleep(1.5)
    assert len(w.received()) == 1, "the will was published more than once"


# ---------------------------------------------------------------------------------------
# 4. Session expiry while the broker is down
# ---------------------------------------------------------------------------------------

def test_session_expired_while_down(durable, clients):
    srv = durable()
    ta, tb = uid("sexp-a"), uid("sexp-b")
    short = DurableClient(srv.mqtt_port, uid("short"), session_expiry=2)
    long_ = DurableClient(srv.mqtt_port, uid("long"), session_expiry=3600)
    clients += [short, long_]
    for d, t in ((short, ta), (long_, tb)):
        d.connect(clean_start=True)
        d.subscribe(t, 1)
    long_.disconnect()
    short.disconnect()
    t_disc = time.monotonic()
    # One message waits in each session while its client is away.
    assert publish_all(srv.mqtt_port, ta, [b"a-before"]) == [0]
    assert publish_all(srv.mqtt_port, tb, [b"b-before"]) == [0]
    srv.kill9()
    assert time.monotonic() - t_disc < 1.5, "setup too slow: the 2 s session had to be alive at the crash"
    time.sleep(4.0)
    srv.start()

    ack = short.connect(clean_start=False)
    assert not ack.session_present, \
        "a session whose 2 s expiry elapsed while the broker was down came back (session present 1)"
    ack = long_.connect(clean_start=False)
    assert ack.session_present, "a session with Session Expiry 3600 did not survive kill -9"
    assert long_.pump_until(lambda: len(long_.deliveries) >= 1, 5), "queued message lost"
    assert publish_all(srv.mqtt_port, ta, [b"a-after"]) == [0x10], \
        "the expired session's subscription still matches (expected PUBACK 0x10 no matching subscribers)"
    assert publish_all(srv.mqtt_port, tb, [b"b-after"]) == [0]
    assert long_.pump_until(lambda: len(long_.deliveries) >= 2, 5)
    short.pump(1.0)
    long_.pump(0.5)
    assert short.payloads() == [], "the expired session still delivered messages"
    assert long_.payloads() == [b"b-before", b"b-after"], "the kept session lost its subscription or queue"


# ---------------------------------------------------------------------------------------
# 5. Inbound QoS 2 duplicate after a crash
# ---------------------------------------------------------------------------------------

def test_inbound_qos2_dedup_after_crash(durable, clients):
    srv = durable()
    topic = uid("q2crash")
    sub = DurableClient(srv.mqtt_port, uid("q2sub"))
    pub = DurableClient(srv.mqtt_port, uid("q2pub"))
    clients += [sub, pub]
    sub.connect(clean_start=True)
    sub.subscribe(topic, 2)
    pub.connect(clean_start=True)

    pub.c.send(publish_packet(topic, b"once", qos=2, pid=7))
    assert _ack_fields(pub.c.expect(PUBREC, 5)) == (7, 0)
    # The subscriber gets it and completes its QoS 2 flow before the crash.
    assert sub.pump_until(lambda: sub.payloads() == [b"once"], 5), sub.payloads()
    sub.pump(0.5)
    assert not sub.pending_qos2, "the broker never sent PUBREL to the subscriber"
    srv.kill9()  # the publisher has not sent PUBREL: packet id 7 is unreleased
    sub.abort()
    pub.abort()
    srv.start()

    assert sub.connect(clean_start=False).session_present
    assert pub.connect(clean_start=False).session_present, "the publisher's session did not survive kill -9"
    # As if its PUBREC had been lost in the crash, the publisher resends the PUBLISH (DUP=1,
    # same packet id), then releases it.
    pub.c.send(publish_packet(topic, b"once", qos=2, pid=7, dup=True))
    assert _ack_fields(pub.c.expect(PUBREC, 5)) == (7, 0)
    pub.c.send(ack_packet(PUBREL, 7))
    assert _ack_fields(pub.c.expect(PUBCOMP, 5)) == (7, 0), \
        "PUBCOMP for the released id: the broker had forgotten the unreleased packet id"
    # Control: the subscriber's session still works after the restart.
    pub.c.send(publish_packet(topic, b"after", qos=2, pid=8))
    assert _ack_fields(pub.c.expect(PUBREC, 5)) == (8, 0)
    pub.c.send(ack_packet(PUBREL, 8))
    assert _ack_fields(pub.c.expect(PUBCOMP, 5)) == (8, 0)
    assert sub.pump_until(lambda: b"after" in sub.payloads(), 5), sub.payloads()
    sub.pump(1.0)
    assert sub.payloads() == [b"once", b"after"], "QoS 2 message resent after a crash was delivered twice"


# ---------------------------------------------------------------------------------------
# 6. Queued messages of an offline session
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("version,durability", [(5, "fsync"), (4, "fsync"), (5, "normal")],
                         ids=["v5-fsync", "v311-fsync", "v5-normal"])
def test_queued_messages_survive_restart(durable, clients, version, durability):
    # "normal" is assumed to protect against a process crash (not a power loss): kill -9
    # must not lose an acknowledged message with either setting.
    srv = durable(DROVER_STORAGE_DURABILITY=durability)
    topic = uid("queued")
    sub = DurableClient(srv.mqtt_port, uid("offline"), version=version)
    clients.append(sub)
    sub.connect(clean_start=True)
    sub.subscribe(topic, 1)
    sub.disconnect()

    expected = [f"m{i:03d}".encode() for i in range(100)]
    reasons = publish_all(srv.mqtt_port, topic, expected, qos=1)
    assert reasons == [0] * 100, f"PUBACK reason codes: {Counter(reasons)}"
    srv.kill9()
    srv.start()

    assert sub.connect(clean_start=False).session_present, "persistent session lost by kill -9"
    sub.pump_until(lambda: len(sub.deliveries) >= 100, 15)
    sub.pump(1.0)
    got = sub.snapshot()
    assert [d.payload for d in got] == expected, \
        (f"{len(got)} messages after restart; missing {sorted(set(expected) - {d.payload for d in got})[:10]}; "
         f"first {[d.payload for d in got[:5]]}")
    assert all(d.qos == 1 for d in got)


# ---------------------------------------------------------------------------------------
# 7. Corrupt database
# ---------------------------------------------------------------------------------------

def test_corrupt_database_is_a_clear_error(durable, clients):
    srv = durable()
    pub = Paho(srv.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(uid("corrupt") + "/r", b"something to lose", qos=1, retain=True)
    pub.disconnect()
    srv.stop()
    garbage = os.urandom(4096)
    while garbage.startswith(b"SQLite format 3"):
        garbage = os.urandom(4096)
    srv.db_path.write_bytes(garbage)

    offset = srv._log_size()
    srv._spawn()  # conftest's spawn: same args and environment, output appended to the log
    srv.expect_alive = False
    try:
        rc = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        serving = srv.mqtt_accepts()
        srv._kill_now()
        raise AssertionError(f"drover serve still running 10 s after start on a corrupt database "
                             f"(MQTT port accepting: {serving})\n{srv.log_since(offset)[-3000:]}")
    out = srv.log_since(offset)
    assert rc != 0, f"exit code {rc} on a corrupt database\n{out[-3000:]}"
    lines = [ln for ln in out.splitlines() if "database" in ln.lower()]
    assert any(w in ln.lower() for ln in lines
               for w in ("error", "critical", "fatal", "corrupt", "not a database", "malformed", "cannot",
                         "failed")), f"no clear error mentioning the database:\n{out[-3000:]}"
    assert not srv.mqtt_accepts(), "something still serves MQTT on the port"
    assert srv.db_path.read_bytes() == garbage, "the failed start modified or replaced the database file"


# ---------------------------------------------------------------------------------------
# 8. Memory backend
# ---------------------------------------------------------------------------------------

def test_memory_backend_still_works(durable, clients):
    srv = durable(DROVER_STORAGE_BACKEND="memory")
    topic = uid("mem")
    sub = Paho(srv.mqtt_port)
    pub = Paho(srv.mqtt_port)
    clients += [sub, pub]
    sub.connect()
    sub.subscribe(topic, qos=2)
    pub.connect()
    pub.publish(topic + "/r", b"kept", qos=1, retain=True)
    for q in (0, 1, 2):
        pub.publish(topic, f"q{q}".encode(), qos=q)
    got = sub.wait_messages(3, 5)
    assert sorted((m.payload, m.qos) for m in got) == [(b"q0", 0), (b"q1", 1), (b"q2", 2)]
    late = Paho(srv.mqtt_port)
    clients.append(late)
    late.connect()
    late.subscribe(topic + "/r", options=SubscribeOptions(qos=1))
    assert [(m.payload, m.retain) for m in late.wait_messages(1, 5)] == [(b"kept", True)]
    assert not srv.db_path.exists(), f"the memory backend created {srv.db_path}"


# ---------------------------------------------------------------------------------------
# 8. Limits on what is stored, and the background purge
# ---------------------------------------------------------------------------------------

def _offline_subscriber(srv, clients, topic: str, qos: int = 1) -> DurableClient:
    sub = DurableClient(srv.mqtt_port, uid("offline"))
    clients.append(sub)
    sub.connect(clean_start=True)
    sub.subscribe(topic, qos)
    sub.disconnect()
    return sub


def test_session_byte_limit_refuses_with_quota_exceeded(durable, clients):
    # Each message counts its topic and payload: 4 of these fit in 4096 bytes, the 5th not.
    srv = durable(DROVER_LIMITS_MAX_QUEUED_BYTES=4096)
    topic = uid("bytes")
    sub = _offline_subscriber(srv, clients, topic)
    payloads = [bytes([65 + i]) * 1000 for i in range(6)]
    refused_before = srv.metric("drover_mqtt_publishes_refused_total", reason="quota_exceeded")
    reasons = publish_all(srv.mqtt_port, topic, payloads, qos=1, window=1)
    assert reasons == [0, 0, 0, 0, 0x97, 0x97], f"PUBACK reason codes {reasons}"
    assert srv.metric("drover_mqtt_publishes_refused_total", reason="quota_exceeded") - refused_before == 2
    assert wait_until(lambda: srv.metric("drover_mqtt_queued_bytes") >= 4 * (1000 + len(topic)), 3)

    # What was acknowledged survives a crash; what was refused was never stored.
    srv.kill9()
    srv.start()
    assert sub.connect(clean_start=False).session_present
    sub.pump_until(lambda: len(sub.deliveries) >= 4, 10)
    sub.pump(0.5)
    assert sub.payloads() == payloads[:4]

    # Once the queue has drained there is room again.
    sub.disconnect()
    assert publish_all(srv.mqtt_port, topic, [b"again"], qos=2, window=1) == [0]


def test_total_message_limit_across_sessions(durable, clients):
    srv = durable(DROVER_LIMITS_MAX_TOTAL_QUEUED_MESSAGES=10)
    topic = uid("total")
    _offline_subscriber(srv, clients, topic)
    _offline_subscriber(srv, clients, topic, qos=2)
    reasons = publish_all(srv.mqtt_port, topic, [b"%d" % i for i in range(7)], qos=2, window=1)
    # Two sessions: 5 messages fill the broker-wide limit of 10.
    assert reasons == [0] * 5 + [0x97] * 2, f"PUBREC reason codes {reasons}"
    assert wait_until(lambda: srv.metric("drover_mqtt_queued_messages") == 10, 3)


def test_refused_v311_publish_closes_the_connection_unacknowledged(durable, clients):
    srv = durable(DROVER_LIMITS_MAX_QUEUED_MESSAGES=1)
    topic = uid("v311")
    _offline_subscriber(srv, clients, topic)
    c = RawClient(srv.mqtt_port)
    clients.append(c)
    assert c.connect(uid("pub311"), version=4).reason == 0
    c.send(publish_packet(topic, b"fits", qos=1, pid=1, v5=False))
    assert c.expect(PUBACK, 5), "first publish not acknowledged"
    c.send(publish_packet(topic, b"does not fit", qos=1, pid=2, v5=False))
    with pytest.raises(Closed):
        p = c.read_packet(5)
        raise AssertionError(f"expected the connection to close, got {p!r}")


def test_expired_messages_are_purged_from_offline_sessions(durable, clients):
    srv = durable(DROVER_LIMITS_PURGE_INTERVAL=1)
    topic = uid("purge")
    sub = _offline_subscriber(srv, clients, topic)
    expired_before = srv.metric("drover_mqtt_messages_dropped_total", reason="expired")
    c = RawClient(srv.mqtt_port)
    clients.append(c)
    assert c.connect(uid("pub")).reason == 0
    for pid in range(1, 31):
        c.send(publish_packet(topic, b"short-%d" % pid, qos=1, pid=pid, props=[(P_MESSAGE_EXPIRY, 1)]))
        assert _ack_fields(c.expect(PUBACK, 5)) == (pid, 0)
    c.send(publish_packet(topic, b"long", qos=1, pid=31))
    assert _ack_fields(c.expect(PUBACK, 5)) == (31, 0)
    assert wait_until(lambda: srv.metric("drover_mqtt_queued_messages") == 31, 3)

    # Without the subscriber coming back, the purge takes them out of memory and the store.
    assert wait_until(lambda: srv.metric("drover_mqtt_queued_messages") == 1, 5), \
        f"queued messages {srv.metric('drover_mqtt_queued_messages')}"
    assert srv.metric("drover_mqtt_messages_dropped_total", reason="expired") - expired_before == 30
    srv.kill9()
    srv.start()
    assert wait_until(lambda: srv.metric("drover_mqtt_queued_messages") == 1, 3), \
        "expired messages came back from the store after a restart"
    assert sub.connect(clean_start=False).session_present
    sub.pump_until(lambda: len(sub.deliveries) >= 1, 5)
    sub.pump(0.5)
    assert sub.payloads() == [b"long"]

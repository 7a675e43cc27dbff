"""Wrappers around third-party MQTT clients for the end-to-end tests.

- `Paho`: paho-mqtt 2.x (VERSION2 callbacks) with a background network thread
  and *no* automatic reconnect, collecting everything it receives.
- `mosq_pub` / `MosqSub`: the Debian mosquitto-clients command line tools.

All waits are bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = "127.0.0.1"

__all__ = [
    "HOST", "Paho", "MosqSub", "mosq_pub", "uid", "wait_until", "props",
    "PacketTypes", "Properties", "ReasonCode", "SubscribeOptions", "mqtt",
]


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(pred, timeout: float, interval: float = 0.02) -> bool:
    """Poll `pred` until true or `timeout` seconds elapse. Returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if result or time.monotonic() >= deadline:
            return bool(result)
        time.sleep(interval)


def props(packet_type: int, **values) -> Properties:
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


@dataclass
class Received:
    t: float
    msg: mqtt.MQTTMessage

    @property
    def topic(self) -> str:
        return self.msg.topic

    @property
    def payload(self) -> bytes:
        return self.msg.payload

    @property
    def qos(self) -> int:
        return self.msg.qos

    @property
    def retain(self) -> bool:
        return bool(self.msg.retain)

    def prop(self, name: str, default=None):
        p = getattr(self.msg, "properties", None)
        return getattr(p, name, default) if p is not None else default


class Paho:
    """A paho-mqtt client with a background loop and no automatic reconnect."""

    def __init__(self, port: int, client_id: str | None = None, version: int = 5,
                 clean: bool = True, transport: str = "tcp", ws_path: str | None = None,
                 will: dict | None = None):
        self.port = port
        self.version = version
        self.client_id = uid("paho") if client_id is None else client_id
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        kwargs = dict(callback_api_version=CallbackAPIVersion.VERSION2,
                      client_id=self.client_id, protocol=proto, transport=transport,
                      reconnect_on_failure=False)
        if version != 5:
            kwargs["clean_session"] = clean
        self.clean = clean
        self.c = mqtt.Client(**kwargs)
        if ws_path is not None:
            self.c.ws_set_options(path=ws_path)
        if will is not None:
            self.c.will_set(**will)
        self._cv = threading.Condition()
        self.messages: list[Received] = []
        self.connack: tuple | None = None  # (flags, reason_code, properties)
        self.connected = threading.Event()
        self.connect_done = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_rc: ReasonCode | None = None
        self.disconnect_props = None
        self.disconnect_time: float | None = None
        self.subacks: dict[int, list] = {}
        self.unsubacks: dict[int, list] = {}
        self.pubacks: dict[int, int] = {}  # mid -> PUBACK/PUBREC reason code (int)
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_connect_fail = self._on_connect_fail
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self._looping = False

    # -- callbacks -------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self._cv:
            self.connack = (flags, reason_code, properties)
            if not reason_code.is_failure:
                self.connected.set()
            self.connect_done.set()
            self._cv.notify_all()

    def _on_connect_fail(self, client, userdata):
        self.connect_done.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._cv:
            self.disconnect_rc = reason_code
            self.disconnect_props = properties
            self.disconnect_time = time.monotonic()
            self.connected.clear()
            self.disconnected.set()
            self.connect_done.set()
            self._cv.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._cv:
            self.pubacks[mid] = int(reason_code.value) if hasattr(reason_code, "value") else int(reason_code)
            self._cv.notify_all()

    def _on_message(self, client, userdata, msg):
        with self._cv:
            self.messages.append(Received(time.monotonic(), msg))
            self._cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cv:
            self.subacks[mid] = list(reason_codes)
            self._cv.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cv:
            self.unsubacks[mid] = list(reason_codes)
            self._cv.notify_all()

    # -- actions ---------------------------------------------------------------
    def connect(self, timeout: float = 10.0, clean_start: bool | None = None,
                properties: Properties | None = None, keepalive: int = 30,
                expect_success: bool = True) -> "Paho":
        kw = {}
        if self.version == 5:
            kw["clean_start"] = self.clean if clean_start is None else clean_start
            kw["properties"] = properties
        self.connect_done.clear()
        self.disconnected.clear()
        self.c.connect(HOST, self.port, keepalive=keepalive, **kw)
        self.c.loop_start()
        self._looping = True
        if not self.connect_done.wait(timeout):
            raise AssertionError(f"{self.client_id}: no CONNACK within {timeout}s")
        if expect_success and not self.connected.is_set():
            raise AssertionError(f"{self.client_id}: connect failed: connack={self.connack} "
                                 f"disconnect_rc={self.disconnect_rc}")
        return self

    @property
    def connack_props(self):
        return self.connack[2] if self.connack else None

    @property
    def session_present(self) -> bool:
        return bool(self.connack[0].session_present)

    def subscribe(self, topic, qos: int = 0, options: SubscribeOptions | None = None,
                  properties: Properties | None = None, timeout: float = 5.0) -> list:
        """Subscribe and wait for the SUBACK. `topic` may be a list of (filter, opts)."""
        if isinstance(topic, list):
            rc, mid = self.c.subscribe(topic, properties=properties)
        elif options is not None:
            rc, mid = self.c.subscribe(topic, options=options, properties=properties)
        else:
            rc, mid = self.c.subscribe(topic, qos, properties=properties)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {rc}"
        with self._cv:
            ok = self._cv.wait_for(lambda: mid in self.subacks, timeout)
        assert ok, f"{self.client_id}: no SUBACK for {topic!r} within {timeout}s"
        codes = self.subacks[mid]
        for code in codes:
            assert not code.is_failure, f"{self.client_id}: subscription {topic!r} refused: {code}"
        return codes

    def unsubscribe(self, topic, timeout: float = 5.0) -> list:
        rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        with self._cv:
            ok = self._cv.wait_for(lambda: mid in self.unsubacks, timeout)
        assert ok, f"{self.client_id}: no UNSUBACK within {timeout}s"
        return self.unsubacks[mid]

    def publish(self, topic: str, payload=b"", qos: int = 0, retain: bool = False,
                properties: Properties | None = None, wait: bool = True,
                timeout: float = 10.0, check: bool = True) -> mqtt.MQTTMessageInfo:
        """Publish; with `wait`, until acknowledged. `check=False` tolerates a local error
        (e.g. when the broker is expected to drop the connection right away)."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if not check:
            return info
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed locally: {info.rc}"
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"{self.client_id}: publish {topic!r} not acknowledged within {timeout}s"
        return info

    def wait_messages(self, n: int, timeout: float = 5.0, topic: str | None = None) -> list[Received]:
        """Wait until at least n messages (optionally on one topic) arrived; return them all."""
        def sel():
            return [m for m in self.messages if topic is None or m.topic == topic]
        with self._cv:
            self._cv.wait_for(lambda: len(sel()) >= n, timeout)
            return sel()

    def received(self, topic: str | None = None) -> list[Received]:
        with self._cv:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_disconnected(self, timeout: float = 5.0) -> bool:
        return self.disconnected.wait(timeout)

    def disconnect(self, reasoncode: ReasonCode | None = None,
                   properties: Properties | None = None, timeout: float = 5.0) -> None:
        if self.connected.is_set():
            self.c.disconnect(reasoncode=reasoncode, properties=properties)
            self.disconnected.wait(timeout)
        self.stop()

    def drop(self) -> None:
        """Vanish without DISCONNECT: stop the network thread, then close the socket."""
        self.stop()
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def stop(self) -> None:
        if self._looping:
            self._looping = False
            self.c.loop_stop()

    def close(self) -> None:
        """Best-effort cleanup for fixtures."""
        try:
            if self.connected.is_set():
                self.c.disconnect()
                self.disconnected.wait(2)
        except Exception:
            pass
        try:
            self.stop()
        except Exception:
            pass
        try:
            s = self.c.socket()
            if s is not None:
                s.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# mosquitto-clients
# ---------------------------------------------------------------------------

def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not installed: run scripts/setup-test-env.sh")
    return path


def mosq_pub(port: int, topic: str, message: str | None = None, *, version: str = "mqttv311",
             qos: int = 0, retain: bool = False, null: bool = False, extra: list[str] | None = None,
             timeout: float = 15.0) -> subprocess.CompletedProcess:
    args = [_tool("mosquitto_pub"), "-h", HOST, "-p", str(port), "-V", version,
            "-t", topic, "-q", str(qos)]
    if null:
        args.append("-n")
    else:
        args += ["-m", message if message is not None else ""]
    if retain:
        args.append("-r")
    args += extra or []
    cp = subprocess.run(args, capture_output=True, timeout=timeout)
    assert cp.returncode == 0, f"mosquitto_pub {args} failed rc={cp.returncode}: {cp.stderr!r}"
    return cp


MSG_PREFIX = "MSG|"


@dataclass
class SubLine:
    retain: bool
    qos: int
    topic: str
    payload: str


class MosqSub:
    """mosquitto_sub as a subprocess, output parsed line by line.

    Runs with -d so we can see the SUBACK (we only publish once the
    subscription is in place) and a -F format: `MSG|%r|%q|%t|%p`.
    """

    def __init__(self, port: int, topics: list[str], *, version: str = "mqttv311", qos: int = 0,
                 count: int | None = None, wait_secs: int | None = None,
                 extra: list[str] | None = None, client_id: str | None = None):
        args = ["stdbuf", "-oL", _tool("mosquitto_sub"), "-h", HOST, "-p", str(port),
                "-V", version, "-q", str(qos), "-d", "-F", MSG_PREFIX + "%r|%q|%t|%p"]
        for t in topics:
            args += ["-t", t]
        if count is not None:
            args += ["-C", str(count)]
        if wait_secs is not None:
            args += ["-W", str(wait_secs)]
        if client_id is not None:
            args += ["-i", client_id]
        args += extra or []
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace", start_new_session=True)
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def wait_line(self, needle: str, timeout: float = 10.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: any(needle in ln for ln in self.lines) or self._eof,
                                     timeout) and any(needle in ln for ln in self.lines)

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        ok = self.wait_line("received SUBACK", timeout)
        assert ok, f"mosquitto_sub never got a SUBACK; output: {self.lines[-20:]}"

    def messages(self) -> list[SubLine]:
        out = []
        with self._cv:
            lines = list(self.lines)
        for ln in lines:
            if ln.startswith(MSG_PREFIX):
                r, q, t, p = ln[len(MSG_PREFIX):].split("|", 3)
                out.append(SubLine(r == "1", int(q), t, p))
        return out

    def wait_messages(self, n: int, timeout: float = 10.0) -> list[SubLine]:
        with self._cv:
            self._cv.wait_for(lambda: self._eof or sum(ln.startswith(MSG_PREFIX) for ln in self.lines) >= n,
                              timeout)
        return self.messages()

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(2)
        return rc

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._reader.join(2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)

    def output(self) -> str:
        with self._cv:
            return "\n".join(self.lines[-40:])

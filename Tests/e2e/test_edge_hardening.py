"""Hardening the device edge (issue 10): the four defects found at 5612e4b, each as a
regression test, and the authorization rules around sessions, wills, reserved client ids and
reserved topics. Real clients: raw sockets for hostile packets, paho-mqtt over mutual TLS."""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest

import aws
import mqtt_raw as m
from clients import Paho, uid, wait_until
from test_device_identity import provision

pytestmark = pytest.mark.skipif(os.environ.get("DROVER_E2E_MOSQUITTO") == "1", reason="Drover-only")

HOST = "127.0.0.1"


class TlsRaw(m.RawClient):
    """The raw client over mutual TLS with a device's certificate."""

    def __init__(self, srv, device, timeout: float = 5.0):  # noqa: D107 - same shape as RawClient
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(device.ca))
        ctx.load_cert_chain(str(device.cert), str(device.key))
        ctx.check_hostname = False
        raw = socket.create_connection((HOST, srv.mqtts_port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.closed = False


def reason_string(p: m.Packet) -> str | None:
    """The reason string of a v5 CONNACK, DISCONNECT or PUBACK body (properties after the code)."""
    body = p.body
    if p.type == m.CONNACK:
        pos = 2
    elif p.type == m.DISCONNECT:
        pos = 1
    else:
        pos = 3
    if len(body) <= pos:
        return None
    props, _ = m.dec_props(body, pos)
    value = m.props_get(props, m.P_REASON_STRING)
    return value.decode() if isinstance(value, bytes) else value


def ack_reason(p: m.Packet) -> int:
    """A v5 PUBACK's reason code: absent means Success."""
    return p.body[2] if len(p.body) > 2 else 0


def alive(srv) -> None:
    assert srv.alive(), f"the server died\n{srv.log_tail()}"
    with m.RawClient(srv.mqtt_port) as c:
        assert c.connect("alive-check").reason == 0


# -- 1. A single packet must not kill the process ---------------------------------------------

def test_regression_long_shared_filter_with_no_local_does_not_crash(drover):
    """At 5612e4b: `$share/g/` + 65 500 bytes with No Local made the reason string too long for
    its 2-byte length, and writeMQTTString trapped (SIGILL)."""
    with m.RawClient(drover.mqtt_port) as c:
        assert c.connect("long-share").reason == 0
        c.send(m.subscribe_packet(1, [("$share/g/" + "a" * 65_500, 0x04 | 1)]))
        packets, closed = c.read_until_closed(5)
        assert closed
        disconnects = [p for p in packets if p.type == m.DISCONNECT]
        assert disconnects and m.disconnect_reason(disconnects[0]) == 0x82
        reason = reason_string(disconnects[0]) or ""
        assert len(reason.encode()) <= 128, "the reason string quotes the whole filter"
    alive(drover)


def test_regression_long_client_id_topic_and_takeover_do_not_crash(drover_factory, tmp_path):
    """Every path that quotes client input, with the limits opened up to the MQTT maximum."""
    srv = drover_factory(DROVER_LIMITS_MAX_CLIENT_ID_LENGTH="65535", DROVER_LIMITS_MAX_TOPIC_LENGTH="65535",
                         DROVER_LIMITS_MAX_TOPIC_LEVELS="32768", DROVER_LIMITS_MAX_CONNECT_PACKET_SIZE="200000",
                         DROVER_MQTT_ANONYMOUS_POLICY=_policy_file(tmp_path, deny_publish="deny/*"))
    long_id = "c" * 65_000
    first = m.RawClient(srv.mqtt_port)
    assert first.connect(long_id).reason == 0
    # Takeover: the first connection is told, with the id quoted, and survives being told.
    second = m.RawClient(srv.mqtt_port)
    assert second.connect(long_id).reason == 0
    taken = first.expect(m.DISCONNECT, 5)
    assert m.disconnect_reason(taken) == 0x8E and len((reason_string(taken) or "").encode()) <= 128
    first.close()
    # A denied publish quotes the topic.
    second.send(m.publish_packet("deny/" + "t" * 65_000, b"x", qos=1, pid=7))
    ack = second.expect(m.PUBACK, 5)
    assert ack_reason(ack) == 0x87 and len((reason_string(ack) or "").encode()) <= 128
    # A shadow request for a thing whose name is far too long is dropped, not answered with a
    # topic longer than MQTT allows.
    second.send(m.publish_packet("$aws/things/" + "n" * 65_000 + "/shadow/get", b"{}", qos=1, pid=8))
    assert ack_reason(second.expect(m.PUBACK, 5)) in (0x00, 0x10)
    second.close()
    alive(srv)


def _policy_file(directory: Path, deny_publish: str | None = None, deny_subscribe: str | None = None) -> str:
    statements = [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]
    if deny_publish:
        statements.append({"Effect": "Deny", "Action": "iot:Publish", "Resource": f"arn:aws:iot:*:*:topic/{deny_publish}"})
    if deny_subscribe:
        statements.append({"Effect": "Deny", "Action": "iot:Subscribe",
                           "Resource": f"arn:aws:iot:*:*:topicfilter/{deny_subscribe}"})
    path = directory / "anonymous-policy.json"
    path.write_text(json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return str(path)


# -- 2. The shadow service cannot be switched off from outside --------------------------------

def test_regression_reserved_client_id_is_refused_and_shadows_keep_working(drover, clients):
    """At 5612e4b: a client with id `$drover/shadows` took over the shadow service's session."""
    thing = uid("svc").replace("-", "_")
    aws.iot(drover).create_thing(thingName=thing)
    for version in (5, 4):
        with m.RawClient(drover.mqtt_port) as c:
            ack = c.connect("$drover/shadows", version=version)
            assert ack.reason == (0x85 if version == 5 else 0x02)
    p = Paho(drover.mqtt_port)
    clients.append(p)
    p.connect()
    p.subscribe(f"$aws/things/{thing}/shadow/update/accepted", qos=1)
    p.publish(f"$aws/things/{thing}/shadow/update", json.dumps({"state": {"reported": {"ok": 1}}}), qos=1)
    assert wait_until(lambda: len(p.messages) == 1, 5), "the shadow service did not answer"


# -- 3. Policies apply to persistent sessions across a restart --------------------------------

def _receive_policy(iot, name: str) -> None:
    thing = "${iot:Connection.Thing.ThingName}"
    iot.create_policy(policyName=name, policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{thing}"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"arn:aws:iot:*:*:topicfilter/things/{thing}/#"},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"arn:aws:iot:*:*:topic/things/{thing}/ok"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"arn:aws:iot:*:*:topic/things/{thing}/*"},
        ],
    }))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _allow_all_policy(iot, prefix: str) -> str:
    """A policy that allows every action on every resource; its name."""
    name = prefix + uid("p")[-6:]
    iot.create_policy(policyName=name, policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))
    return name


def _persistent_connect(client: m.RawClient, client_id: str) -> m.Connack:
    return client.connect(client_id, clean=False, props=[(m.P_SESSION_EXPIRY, 3600)])


def _received_topics(client: m.RawClient, seconds: float) -> list[str]:
    topics = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            p = client.read_packet(max(0.05, deadline - time.monotonic()))
        except (TimeoutError, socket.timeout, AssertionError):
            break
        if p.type == m.PUBLISH:
            pub = m.parse_publish(p, v5=True)
            topics.append(pub.topic.decode())
            if pub.qos:
                client.send(m.ack_packet(m.PUBACK, pub.pid))
    return topics


def test_regression_policy_applies_to_a_session_queued_across_a_restart(drover_factory, tmp_path):
    """At 5612e4b: recovered sessions had no principal, and no principal meant "allow"."""
    srv = drover_factory(DROVER_E2E_TLS="1")
    iot = aws.iot(srv)
    policy = "receive_ok_" + uid("p")[-6:]
    _receive_policy(iot, policy)
    dev = provision(srv, tmp_path, policy=policy)

    c = TlsRaw(srv, dev)
    assert _persistent_connect(c, dev.thing).reason == 0
    assert c.subscribe([(f"things/{dev.thing}/#", 1)]) == [1]
    c.send(m.disconnect_packet(0))
    c.close()

    srv.stop()
    srv.expect_alive = True
    srv.start()
    # Readiness covers the plain listener and /health; the TLS listener may come up just after.
    assert wait_until(lambda: _port_open(srv.mqtts_port), 10), "the mutual-TLS listener did not come back"

    # Queued while the device is away, after the restart.
    with m.RawClient(srv.mqtt_port) as pub:
        assert pub.connect("publisher").reason == 0
        for pid, leaf in ((1, "secret"), (2, "ok")):
            pub.send(m.publish_packet(f"things/{dev.thing}/{leaf}", leaf.encode(), qos=1, pid=pid))
            pub.expect(m.PUBACK, 5)

    c = TlsRaw(srv, dev)
    ack = _persistent_connect(c, dev.thing)
    assert ack.reason == 0 and ack.session_present
    topics = _received_topics(c, 2.0)
    c.close()
    assert topics == [f"things/{dev.thing}/ok"], f"withheld message delivered: {topics}"


def test_a_session_belongs_to_its_certificate(drover_factory, tmp_path):
    """Another certificate that names the same client id starts afresh: no queue, present 0."""
    srv = drover_factory(DROVER_E2E_TLS="1")
    iot = aws.iot(srv)
    open_policy = _allow_all_policy(iot, "open_")
    owner = provision(srv, tmp_path, policy=open_policy)
    intruder = provision(srv, tmp_path, policy=open_policy)

    c = TlsRaw(srv, owner)
    assert _persistent_connect(c, owner.thing).reason == 0
    assert c.subscribe([(f"things/{owner.thing}/#", 1)]) == [1]
    c.send(m.disconnect_packet(0))
    c.close()
    with m.RawClient(srv.mqtt_port) as pub:
        assert pub.connect("publisher").reason == 0
        pub.send(m.publish_packet(f"things/{owner.thing}/cmd", b"private", qos=1, pid=1))
        pub.expect(m.PUBACK, 5)

    other = TlsRaw(srv, intruder)
    ack = _persistent_connect(other, owner.thing)
    assert ack.reason == 0 and not ack.session_present, "another certificate resumed the session"
    assert _received_topics(other, 1.0) == []
    other.close()


# -- 4. Wills are authorized -------------------------------------------------------------------

def _will_policy(iot, name: str, retain: bool = False) -> None:
    thing = "${iot:Connection.Thing.ThingName}"
    actions = ["iot:Publish", "iot:Receive"] + (["iot:RetainPublish"] if retain else [])
    iot.create_policy(policyName=name, policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{thing}"},
            {"Effect": "Allow", "Action": actions, "Resource": f"arn:aws:iot:*:*:topic/things/{thing}/*"},
        ],
    }))


def test_regression_a_will_on_another_things_topic_is_refused(drover_factory, tmp_path):
    """At 5612e4b: a device could set a retained will on another thing's shadow update topic."""
    srv = drover_factory(DROVER_E2E_TLS="1")
    iot = aws.iot(srv)
    policy = "will_" + uid("p")[-6:]
    _will_policy(iot, policy)
    dev = provision(srv, tmp_path, policy=policy)
    victim = uid("victim").replace("-", "_")

    for will in (m.Will(f"$aws/things/{victim}/shadow/update", b'{"state":{"desired":{"x":1}}}', qos=1, retain=True),
                 m.Will(f"things/{dev.thing}/status", b"gone", retain=True),  # no iot:RetainPublish
                 m.Will(f"things/{victim}/status", b"gone")):
        c = TlsRaw(srv, dev)
        ack = c.connect(dev.thing, will=will)
        c.close()
        assert ack.reason == 0x87, f"will on {will.topic} (retain {will.retain}) was accepted"
    c = TlsRaw(srv, dev)
    assert c.connect(dev.thing, will=m.Will(f"things/{dev.thing}/status", b"gone")).reason == 0
    c.close()


def test_a_will_is_checked_again_when_it_is_published(drover_factory, tmp_path, clients):
    srv = drover_factory(DROVER_E2E_TLS="1")
    iot = aws.iot(srv)
    policy = "will_again_" + uid("p")[-6:]
    _will_policy(iot, policy)
    dev = provision(srv, tmp_path, policy=policy)
    watcher = Paho(srv.mqtt_port)
    clients.append(watcher)
    watcher.connect()
    watcher.subscribe(f"things/{dev.thing}/#", qos=1)

    c = TlsRaw(srv, dev)
    assert c.connect(dev.thing, will=m.Will(f"things/{dev.thing}/status", b"gone", qos=1)).reason == 0
    # The policy loses iot:Publish while the device is connected.
    thing = "${iot:Connection.Thing.ThingName}"
    iot.create_policy_version(policyName=policy, setAsDefault=True, policyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{thing}"}]}))
    refused_before = srv.metric("drover_mqtt_wills_refused_total")
    c.abort()
    assert wait_until(lambda: srv.metric("drover_mqtt_wills_refused_total") > refused_before, 5)
    time.sleep(0.5)
    assert watcher.messages == [], "a will the device may no longer publish went out"


# -- No client gets past its policy ----------------------------------------------------------

def test_reply_topics_are_subscribe_only(drover, clients):
    thing = uid("reply").replace("-", "_")
    aws.iot(drover).create_thing(thingName=thing)
    watcher = Paho(drover.mqtt_port)
    clients.append(watcher)
    watcher.connect()
    watcher.subscribe(f"$aws/things/{thing}/shadow/#", qos=1)
    with m.RawClient(drover.mqtt_port) as c:
        assert c.connect("forger").reason == 0
        for pid, leaf in enumerate(("update/accepted", "update/delta", "get/rejected", "update/documents",
                                    "name/cfg/update/delta"), start=1):
            c.send(m.publish_packet(f"$aws/things/{thing}/shadow/{leaf}", b'{"state":{}}', qos=1, pid=pid))
            assert ack_reason(c.expect(m.PUBACK, 5)) == 0x87, leaf
    time.sleep(0.3)
    assert watcher.messages == [], "a forged shadow reply reached a subscriber"
    with pytest.raises(Exception) as refused:
        aws.iot_data(drover).publish(topic=f"$aws/things/{thing}/shadow/update/accepted", qos=1, payload=b"{}")
    assert "UnauthorizedException" in str(refused.value)


def test_wildcard_client_ids_are_refused_on_mutual_tls(drover_factory, tmp_path):
    srv = drover_factory(DROVER_E2E_TLS="1")
    iot = aws.iot(srv)
    policy = _allow_all_policy(iot, "wild_")
    dev = provision(srv, tmp_path, policy=policy)
    for client_id in ("+", "#", "a*", "dev?", "x/+/y"):
        c = TlsRaw(srv, dev)
        assert c.connect(client_id).reason == 0x85, client_id
        c.close()


def test_shadows_only_for_registered_things(drover, clients):
    p = Paho(drover.mqtt_port)
    clients.append(p)
    p.connect()
    ghost = uid("ghost").replace("-", "_")
    p.subscribe(f"$aws/things/{ghost}/shadow/update/rejected", qos=1)
    p.publish(f"$aws/things/{ghost}/shadow/update", json.dumps({"state": {"reported": {"a": 1}}}), qos=1)
    assert wait_until(lambda: len(p.messages) == 1, 5)
    assert json.loads(p.messages[0].payload)["code"] == 404


def test_named_shadows_per_thing_are_bounded(drover_factory):
    srv = drover_factory(DROVER_SHADOWS_MAX_NAMED_SHADOWS="3")
    thing = uid("many").replace("-", "_")
    aws.iot(srv).create_thing(thingName=thing)
    data = aws.iot_data(srv)
    for name in ("a", "b", "c"):
        data.update_thing_shadow(thingName=thing, shadowName=name, payload=json.dumps({"state": {"reported": {"n": 1}}}))
    with pytest.raises(Exception) as refused:
        data.update_thing_shadow(thingName=thing, shadowName="d", payload=json.dumps({"state": {"reported": {"n": 1}}}))
    assert "InvalidRequestException" in str(refused.value) and "at most 3" in str(refused.value)
    # An existing one still takes updates.
    data.update_thing_shadow(thingName=thing, shadowName="a", payload=json.dumps({"state": {"reported": {"n": 2}}}))


def test_anonymous_needs_a_loopback_peer(drover_factory):
    """Bound to every address, the plain listener admits anonymous clients only from loopback
    by default; 127.0.0.1 is loopback, so this checks the rule through the explicit opt-out."""
    srv = drover_factory(DROVER_MQTT_BIND="0.0.0.0")
    with m.RawClient(srv.mqtt_port) as c:
        # Not loopback-bound, and not explicitly allowed: anonymous is off for everyone.
        assert c.connect("anon").reason == 0x87
    srv2 = drover_factory(DROVER_MQTT_BIND="0.0.0.0", DROVER_MQTT_ALLOW_ANONYMOUS="true")
    with m.RawClient(srv2.mqtt_port) as c:
        assert c.connect("anon").reason == 0


# -- TLS session resumption keeps the certificate checks --------------------------------------

def _s_client(srv, dev, session_file: Path, mode: str, payload: bytes) -> subprocess.CompletedProcess:
    """openssl s_client with the device's certificate, saving (-sess_out) or resuming
    (-sess_in) a TLS 1.2 session, sending `payload` and reading for about a second."""
    packet = session_file.with_suffix(".mqtt")
    packet.write_bytes(payload)
    # The payload, then a pause for the answer, then EOF: s_client ends when its input does.
    script = (f"(cat {packet}; sleep 1.5) | openssl s_client -connect {HOST}:{srv.mqtts_port} -tls1_2 "
              f"-CAfile {dev.ca} -cert {dev.cert} -key {dev.key} {mode} {session_file}")
    return subprocess.run(["bash", "-c", script], capture_output=True, timeout=15)


def test_tls_resumption_does_not_skip_the_certificate_checks(drover_factory, tmp_path):
    srv = drover_factory(DROVER_E2E_TLS="1")
    iot = aws.iot(srv)
    policy = _allow_all_policy(iot, "resume_")
    dev = provision(srv, tmp_path, policy=policy)
    session = tmp_path / "tls-session.pem"
    connect = m.connect_packet(dev.thing, version=4)
    first = _s_client(srv, dev, session, "-sess_out", connect)
    assert b"\x20\x02\x00\x00" in first.stdout, f"no CONNACK 0 over TLS: {first.stderr[-500:]!r}"
    assert session.exists() and session.stat().st_size > 0

    # Still valid: the session resumes, and the device gets in.
    again = _s_client(srv, dev, session, "-sess_in", connect)
    assert b"Reused, TLSv1.2" in again.stdout, "the TLS session was not resumed; the test proves nothing"
    assert b"\x20\x02\x00\x00" in again.stdout

    # Revoked: a resumed session skips the handshake's verification, and still gets no CONNACK 0.
    iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
    revoked = _s_client(srv, dev, session, "-sess_in", connect)
    assert b"\x20\x02\x00\x00" not in revoked.stdout, "a revoked certificate got back in through a resumed TLS session"
    if b"Reused, TLSv1.2" in revoked.stdout:
        assert b"\x20\x02\x00\x05" in revoked.stdout, "the resumed connection was not refused with 0x05"


def test_tls_resumption_after_the_ca_is_deactivated(drover_factory, tmp_path):
    """At 5612e4b a CONNECT checked the certificate's own status but not its CA's: a resumed
    TLS session got back in after the CA was deactivated."""
    srv = drover_factory(DROVER_E2E_TLS="1")
    iot = aws.iot(srv)
    policy = _allow_all_policy(iot, "resume_ca_")
    dev = provision(srv, tmp_path, policy=policy)
    session = tmp_path / "tls-session.pem"
    connect = m.connect_packet(dev.thing, version=4)
    assert b"\x20\x02\x00\x00" in _s_client(srv, dev, session, "-sess_out", connect).stdout
    ca_id = iot.describe_certificate(certificateId=dev.cert_id)["certificateDescription"]["caCertificateId"]
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    resumed = _s_client(srv, dev, session, "-sess_in", connect)
    assert b"Reused, TLSv1.2" in resumed.stdout, "the TLS session was not resumed; the test proves nothing"
    assert b"\x20\x02\x00\x00" not in resumed.stdout, "a device of a deactivated CA got in through a resumed session"
    assert b"\x20\x02\x00\x05" in resumed.stdout


@pytest.mark.parametrize("version", [4, 5])
def test_connack_is_the_first_packet_when_a_resumed_session_redelivers(drover, version):
    """[MQTT-3.2.0-1] Found by scripts/wirefuzz.py: a resumed session whose redelivery waited for
    the store let a PINGRESP, sent in the same write as CONNECT, overtake the CONNACK."""
    client_id = uid("resume-order")
    props = [(m.P_SESSION_EXPIRY, 600)] if version == 5 else None
    with m.RawClient(drover.mqtt_port) as a:
        assert a.connect(client_id, version=version, clean=False, props=props).reason == 0
        assert a.subscribe([("order/t", 1)], v5=version == 5) == [1]
        a.send(m.publish_packet("order/t", b"unacked", qos=1, pid=3, v5=version == 5))
        a.expect(m.PUBLISH, 5, skip=(m.PUBACK,))   # delivered to itself, never acknowledged
    b = m.RawClient(drover.mqtt_port)
    try:
        b.send(m.connect_packet(client_id, version=version, clean=False, props=props) + m.pingreq_packet())
        first = b.read_packet(5)
        assert first.type == m.CONNACK, f"{first!r} went out before the CONNACK"
        assert m.parse_connack(first, v5=version == 5).session_present
    finally:
        b.close()

"""Will messages: delay, cancellation by reconnect, DISCONNECT 0x04, normal DISCONNECT, 3.1.1."""

import time

import pytest

from clients import (MosqSub, Paho, PacketTypes, ReasonCode, props, uid)

WILL_WINDOW = (1.5, 6.0)


def _watcher(port, clients, topic):
    w = Paho(port)
    clients.append(w)
    w.connect()
    w.subscribe(topic, qos=1)
    return w


def _will_client(port, clients, topic, payload=b"gone", delay=None, session_expiry=None,
                 client_id=None, version=5, retain=False):
    will_props = None
    if delay is not None:
        will_props = props(PacketTypes.WILLMESSAGE, WillDelayInterval=delay)
    c = Paho(port, client_id=client_id, version=version,
             will=dict(topic=topic, payload=payload, qos=1, retain=retain, properties=will_props))
    clients.append(c)
    connect_props = None
    if session_expiry is not None:
        connect_props = props(PacketTypes.CONNECT, SessionExpiryInterval=session_expiry)
    c.connect(properties=connect_props)
    return c


def test_will_delay_interval_is_honoured(drover, clients):
    topic = uid("will") + "/delay"
    w = _watcher(drover.mqtt_port, clients, topic)
    c = _will_client(drover.mqtt_port, clients, topic, delay=2, session_expiry=10)
    t0 = time.monotonic()
    c.drop()  # no DISCONNECT: network connection just goes away
    msgs = w.wait_messages(1, timeout=WILL_WINDOW[1] + 2)
    assert len(msgs) == 1, "will message never published after abrupt close"
    dt = msgs[0].t - t0
    assert msgs[0].payload == b"gone"
    assert WILL_WINDOW[0] <= dt <= WILL_WINDOW[1], f"will published after {dt:.2f}s, expected ~2s delay"


def test_will_cancelled_by_reconnect_within_delay(drover, clients):
    topic = uid("will") + "/cancel"
    control_topic = topic + "-control"
    w = _watcher(drover.mqtt_port, clients, topic)
    wc = _watcher(drover.mqtt_port, clients, control_topic)
    c = _will_client(drover.mqtt_port, clients, topic, delay=2, session_expiry=10)
    # Same will settings, but this one does not come back: its will must fire meanwhile.
    control = _will_client(drover.mqtt_port, clients, control_topic, payload=b"control",
                           delay=2, session_expiry=10)
    c.drop()
    control.drop()
    time.sleep(0.5)
    back = Paho(drover.mqtt_port, client_id=c.client_id)
    clients.append(back)
    back.connect(clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=10))
    assert back.session_present, "session did not survive the 0.5 s gap despite SessionExpiryInterval=10"
    time.sleep(4.0)
    assert [m.payload for m in wc.received()] == [b"control"], \
        "control: the delayed will of a client that stayed away was not published"
    assert w.received() == [], "will was published although the client reconnected within the delay"
    back.disconnect()


def test_session_end_before_will_delay_publishes_will(drover, clients):
    # Will Delay 30 s but the session expires after 1 s: the will goes out when the session ends.
    topic = uid("will") + "/sessend"
    w = _watcher(drover.mqtt_port, clients, topic)
    c = _will_client(drover.mqtt_port, clients, topic, delay=30, session_expiry=1)
    t0 = time.monotonic()
    c.drop()
    msgs = w.wait_messages(1, timeout=6)
    assert len(msgs) == 1, "will not published when the session expired before the will delay"
    dt = msgs[0].t - t0
    assert 0.5 <= dt <= 4.5, f"will published after {dt:.2f}s, expected ~1s (session expiry)"


def test_disconnect_with_will_message_reason_0x04(drover, clients):
    topic = uid("will") + "/rc4"
    w = _watcher(drover.mqtt_port, clients, topic)
    c = _will_client(drover.mqtt_port, clients, topic, payload=b"rc4")
    c.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
    msgs = w.wait_messages(1, timeout=4)
    assert [m.payload for m in msgs] == [b"rc4"], "DISCONNECT 0x04 did not publish the will"


@pytest.mark.parametrize("version", [5, 4], ids=["v5", "v311"])
def test_normal_disconnect_discards_will(drover, clients, version):
    topic = uid("will") + "/normal"
    w = _watcher(drover.mqtt_port, clients, topic)
    c = _will_client(drover.mqtt_port, clients, topic, version=version)
    c.disconnect()
    # Control: a second will client on the same topic that vanishes proves the watcher works.
    c2 = _will_client(drover.mqtt_port, clients, topic, payload=b"control", version=version)
    time.sleep(2.0)
    assert w.received() == [], "will published after a normal DISCONNECT"
    c2.drop()
    msgs = w.wait_messages(1, timeout=5)
    assert [m.payload for m in msgs] == [b"control"]


def test_v311_will_on_abrupt_close(drover, clients):
    topic = uid("will") + "/v311"
    w = _watcher(drover.mqtt_port, clients, topic)
    c = _will_client(drover.mqtt_port, clients, topic, payload=b"v311-gone", version=4)
    t0 = time.monotonic()
    c.drop()
    msgs = w.wait_messages(1, timeout=5)
    assert [m.payload for m in msgs] == [b"v311-gone"]
    assert msgs[0].t - t0 < 3.0


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_will_of_killed_mosquitto_sub(drover, clients, version):
    topic = uid("will") + "/killed"
    w = _watcher(drover.mqtt_port, clients, topic)
    victim = MosqSub(drover.mqtt_port, [uid("idle")], version=version,
                     extra=["--will-topic", topic, "--will-payload", "killed", "--will-qos", "1"])
    clients.append(victim)
    victim.wait_subscribed()
    victim.kill()  # SIGKILL: the process cannot send DISCONNECT
    msgs = w.wait_messages(1, timeout=5)
    assert [m.payload for m in msgs] == [b"killed"]


def test_retained_will(drover, clients):
    topic = uid("will") + "/retained"
    c = _will_client(drover.mqtt_port, clients, topic, payload=b"offline", version=4, retain=True)
    c.drop()
    late = Paho(drover.mqtt_port)
    clients.append(late)
    late.connect()
    deadline = time.monotonic() + 5
    # The will is published asynchronously: resubscribe until the retained copy shows up.
    while time.monotonic() < deadline and not late.received():
        late.subscribe(topic, qos=1)
        late.wait_messages(1, timeout=0.5)
    msgs = late.received()
    assert msgs, "retained will not stored"
    assert (msgs[0].payload, msgs[0].retain) == (b"offline", True)

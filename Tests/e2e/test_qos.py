"""Delivery guarantees: QoS 2 exactly once and in order, QoS downgrade, offline queueing."""

import time

import pytest

from clients import MosqSub, Paho, PacketTypes, mosq_pub, props, uid


@pytest.mark.parametrize("sub_version", [5, 4], ids=["sub-v5", "sub-v311"])
def test_qos2_200_messages_exactly_once_in_order(drover, clients, sub_version):
    topic = uid("qos2") + "/seq"
    n = 200
    sub = Paho(drover.mqtt_port, version=sub_version)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=2)

    pub = Paho(drover.mqtt_port, version=5)
    clients.append(pub)
    pub.connect()
    infos = [pub.publish(topic, str(i).encode(), qos=2, wait=False) for i in range(n)]
    deadline = time.monotonic() + 30
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
    assert all(i.is_published() for i in infos), \
        f"only {sum(i.is_published() for i in infos)}/{n} QoS 2 publishes completed (PUBCOMP)"

    sub.wait_messages(n, timeout=20)
    time.sleep(0.5)  # give any duplicate the chance to show up
    got = sub.received()
    payloads = [int(m.payload) for m in got]
    dups = sorted({p for p in payloads if payloads.count(p) > 1})
    missing = sorted(set(range(n)) - set(payloads))
    assert not dups, f"duplicated QoS 2 messages: {dups[:20]}"
    assert not missing, f"lost QoS 2 messages: {missing[:20]} (got {len(payloads)})"
    assert payloads == list(range(n)), "QoS 2 messages out of order"
    assert {m.qos for m in got} == {2}
    assert all(m.topic == topic for m in got)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_qos2_mosquitto_pub_to_mosquitto_sub(drover, clients, version):
    topic = uid("mq2") + "/a"
    sub = MosqSub(drover.mqtt_port, [topic], version=version, qos=2, count=1)
    clients.append(sub)
    sub.wait_subscribed()
    cp = mosq_pub(drover.mqtt_port, topic, "hello-qos2", version=version, qos=2, extra=["-d"])
    out = cp.stdout.decode(errors="replace")
    # The publisher side of the QoS 2 handshake.
    for step in ("received PUBREC", "sending PUBREL", "received PUBCOMP"):
        assert step in out, f"mosquitto_pub: no '{step}' in:\n{out}"
    rc = sub.wait_exit(10)
    assert rc == 0, f"mosquitto_sub -C 1 did not exit cleanly (rc={rc}):\n{sub.output()}"
    msgs = sub.messages()
    assert [(m.topic, m.payload, m.qos) for m in msgs] == [(topic, "hello-qos2", 2)], sub.output()
    # The subscriber side of the QoS 2 handshake.
    text = sub.output()
    for step in ("sending PUBREC", "received PUBREL", "sending PUBCOMP"):
        assert step in text, f"mosquitto_sub: no '{step}' in:\n{text}"


@pytest.mark.parametrize("sub_qos,pub_qos", [(0, 2), (1, 2), (2, 1), (1, 0), (2, 2)])
def test_delivered_qos_is_min_of_publish_and_subscription(drover, clients, sub_qos, pub_qos):
    topic = uid("qmin")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=sub_qos)
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"x", qos=pub_qos)
    msgs = sub.wait_messages(1, timeout=5)
    assert len(msgs) == 1
    assert msgs[0].qos == min(sub_qos, pub_qos)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_persistent_session_queues_qos1_while_offline(drover, clients, version):
    topic = uid("offline")
    cid = uid("persist")
    sess = Paho(drover.mqtt_port, client_id=cid, version=version, clean=False)
    clients.append(sess)
    connect_props = props(PacketTypes.CONNECT, SessionExpiryInterval=60) if version == 5 else None
    sess.connect(clean_start=True if version == 5 else None, properties=connect_props)
    sess.subscribe(topic, qos=1)
    sess.disconnect()

    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    for i in range(5):
        pub.publish(topic, f"m{i}".encode(), qos=1)

    back = Paho(drover.mqtt_port, client_id=cid, version=version, clean=False)
    clients.append(back)
    back.connect(clean_start=False if version == 5 else None, properties=connect_props)
    assert back.session_present, "CONNACK session present flag not set for a persistent session"
    msgs = back.wait_messages(5, timeout=5)
    time.sleep(0.3)
    msgs = back.received()
    assert [m.payload for m in msgs] == [f"m{i}".encode() for i in range(5)]
    assert all(m.qos == 1 for m in msgs)


def test_v5_session_expiry_zero_discards_session(drover, clients):
    topic = uid("noexp")
    cid = uid("ephemeral")
    c = Paho(drover.mqtt_port, client_id=cid)
    clients.append(c)
    c.connect(clean_start=True)  # no Session Expiry Interval: session ends with the connection
    c.subscribe(topic, qos=1)
    c.disconnect()

    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"lost", qos=1)

    back = Paho(drover.mqtt_port, client_id=cid)
    clients.append(back)
    back.connect(clean_start=False)
    assert not back.session_present
    time.sleep(1.0)
    assert back.received() == []

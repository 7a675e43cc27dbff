"""Retained messages: store, replace, clear, wildcards, MQTT 5 Retain Handling and Retain As Published."""

import time

import pytest

from clients import MosqSub, Paho, PacketTypes, SubscribeOptions, mosq_pub, props, uid


def _first_message(port, topic, version="mqttv311"):
    sub = MosqSub(port, [topic], version=version, count=1, wait_secs=5)
    try:
        rc = sub.wait_exit(10)
        msgs = sub.messages()
        assert rc == 0 and len(msgs) == 1, f"expected one message on {topic}, rc={rc}:\n{sub.output()}"
        return msgs[0]
    finally:
        sub.stop()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_retained_set_replace_clear_with_mosquitto_tools(drover, version):
    topic = uid("ret") + "/state"
    mosq_pub(drover.mqtt_port, topic, "v1", version=version, qos=1, retain=True)

    m = _first_message(drover.mqtt_port, topic, version)
    assert (m.retain, m.topic, m.payload) == (True, topic, "v1")

    mosq_pub(drover.mqtt_port, topic, "v2", version=version, qos=1, retain=True)
    m = _first_message(drover.mqtt_port, topic, version)
    assert (m.retain, m.topic, m.payload) == (True, topic, "v2")

    # Empty retained payload clears it: a new subscriber gets nothing.
    mosq_pub(drover.mqtt_port, topic, version=version, qos=1, retain=True, null=True)
    sub = MosqSub(drover.mqtt_port, [topic], version=version, wait_secs=2)
    try:
        rc = sub.wait_exit(10)
        assert rc is not None, "mosquitto_sub -W 2 did not exit"
        assert "received SUBACK" in sub.output(), sub.output()
        assert sub.messages() == [], f"cleared retained message still delivered:\n{sub.output()}"
    finally:
        sub.stop()


def test_replaced_retained_message_is_the_only_one(drover, clients):
    topic = uid("ret1")
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    for v in (b"a", b"b", b"c"):
        pub.publish(topic, v, qos=1, retain=True)
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=1)
    sub.wait_messages(1, timeout=5)
    time.sleep(0.7)
    got = sub.received()
    assert [(m.payload, m.retain) for m in got] == [(b"c", True)]


def test_retained_messages_match_wildcard_subscription(drover, clients):
    base = uid("retw")
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    expected = {f"{base}/a": b"1", f"{base}/b/c": b"2", f"{base}/d": b"3"}
    for t, p in expected.items():
        pub.publish(t, p, qos=1, retain=True)
    pub.publish(f"{base}-other/x", b"no", qos=1, retain=True)

    sub = Paho(drover.mqtt_port, version=4)
    clients.append(sub)
    sub.connect()
    sub.subscribe(f"{base}/#", qos=1)
    sub.wait_messages(3, timeout=5)
    time.sleep(0.5)
    got = {m.topic: m.payload for m in sub.received()}
    assert got == expected
    assert all(m.retain for m in sub.received())


def test_retain_handling_0_1_2(drover, clients):
    topic = uid("rh")
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"stored", qos=1, retain=True)

    # Retain Handling 0: retained message sent on every subscribe.
    s0 = Paho(drover.mqtt_port)
    clients.append(s0)
    s0.connect()
    s0.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=0))
    assert [m.payload for m in s0.wait_messages(1, 5)] == [b"stored"]

    # Retain Handling 1: only if the subscription did not exist yet.
    s1 = Paho(drover.mqtt_port)
    clients.append(s1)
    s1.connect()
    s1.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=1))
    assert [m.payload for m in s1.wait_messages(1, 5)] == [b"stored"]
    s1.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=1))  # exists already

    # Retain Handling 2: never.
    s2 = Paho(drover.mqtt_port)
    clients.append(s2)
    s2.connect()
    s2.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))

    time.sleep(1.0)
    assert [m.payload for m in s1.received()] == [b"stored"], "RH=1 resubscribe resent the retained message"
    assert s2.received() == [], "RH=2 subscriber got the retained message"

    # The RH=2 subscription itself works: live messages arrive.
    pub.publish(topic, b"live", qos=1)
    assert [m.payload for m in s2.wait_messages(1, 5)] == [b"live"]


def test_retain_as_published(drover, clients):
    topic = uid("rap")
    rap = Paho(drover.mqtt_port)
    plain = Paho(drover.mqtt_port)
    clients += [rap, plain]
    rap.connect()
    plain.connect()
    rap.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
    plain.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))

    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"r", qos=1, retain=True)
    pub.publish(topic, b"n", qos=1, retain=False)

    got_rap = [(m.payload, m.retain) for m in rap.wait_messages(2, 5)]
    got_plain = [(m.payload, m.retain) for m in plain.wait_messages(2, 5)]
    assert got_rap == [(b"r", True), (b"n", False)]
    assert got_plain == [(b"r", False), (b"n", False)]

    # A subscription made later gets the stored message with retain set, either way.
    late = Paho(drover.mqtt_port)
    clients.append(late)
    late.connect()
    late.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
    assert [(m.payload, m.retain) for m in late.wait_messages(1, 5)] == [(b"r", True)]


def test_retained_message_expiry(drover, clients):
    topic = uid("retexp")
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic + "/short", b"s", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(topic + "/long", b"l", qos=1, retain=True,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=100))
    time.sleep(2.5)
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic + "/#", qos=1)
    sub.wait_messages(1, 5)
    time.sleep(0.5)
    got = sub.received()
    assert [m.topic for m in got] == [topic + "/long"], "expired retained message was delivered"
    left = got[0].prop("MessageExpiryInterval")
    assert left is not None and 90 <= left <= 99, f"MessageExpiryInterval on delivery: {left}"


def test_retained_delivery_carries_subscription_identifier(drover, clients):
    topic = uid("ret-subid")
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"stored", qos=1, retain=True)
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=77))
    msgs = sub.wait_messages(1, 5)
    assert len(msgs) == 1 and msgs[0].retain
    assert msgs[0].prop("SubscriptionIdentifier") == [77]

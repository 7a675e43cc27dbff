"""Shared subscriptions, overlapping subscriptions, No Local, unsubscribe."""

import time
from collections import Counter

import pytest

from clients import Paho, PacketTypes, SubscribeOptions, props, uid


def test_shared_subscription_load_balances_exactly_once(drover, clients):
    topic = uid("shared") + "/t"
    members = []
    for _ in range(3):
        m = Paho(drover.mqtt_port)
        clients.append(m)
        m.connect()
        m.subscribe(f"$share/g1/{topic}", qos=1)
        members.append(m)
    plain = Paho(drover.mqtt_port)
    clients.append(plain)
    plain.connect()
    plain.subscribe(topic, qos=1)

    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    n = 300
    infos = [pub.publish(topic, str(i).encode(), qos=1, wait=False) for i in range(n)]
    deadline = time.monotonic() + 30
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
    assert all(i.is_published() for i in infos)

    def total():
        return sum(len(m.received()) for m in members)

    end = time.monotonic() + 15
    while time.monotonic() < end and total() < n:
        time.sleep(0.05)
    time.sleep(0.5)  # duplicates, if any, have time to arrive

    per_member = [[int(x.payload) for x in m.received()] for m in members]
    counts = Counter(p for lst in per_member for p in lst)
    dups = sorted(p for p, c in counts.items() if c > 1)
    missing = sorted(set(range(n)) - set(counts))
    assert not dups, f"messages delivered to more than one group member: {dups[:20]}"
    assert not missing, f"messages delivered to no group member: {missing[:20]}"
    assert sum(len(x) for x in per_member) == n
    assert all(len(x) > 0 for x in per_member), f"a member got nothing: {[len(x) for x in per_member]}"
    for m in members:
        assert all(x.topic == topic for x in m.received()), "shared delivery must carry the real topic"

    plain.wait_messages(n, timeout=10)
    assert sorted(int(x.payload) for x in plain.received()) == list(range(n))


def test_shared_subscription_groups_are_independent(drover, clients):
    topic = uid("shared2")
    g1 = Paho(drover.mqtt_port)
    g2 = Paho(drover.mqtt_port)
    clients += [g1, g2]
    g1.connect().subscribe(f"$share/one/{topic}", qos=1)
    g2.connect().subscribe(f"$share/two/{topic}", qos=1)
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    for i in range(10):
        pub.publish(topic, str(i).encode(), qos=1)
    assert len(g1.wait_messages(10, 5)) == 10
    assert len(g2.wait_messages(10, 5)) == 10


def test_overlapping_subscriptions_v5_single_delivery_with_both_ids(drover, clients):
    base = uid("ovl")
    c = Paho(drover.mqtt_port)
    clients.append(c)
    c.connect()
    c.subscribe(f"{base}/a/+", qos=0,
                properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=1))
    c.subscribe(f"{base}/a/#", qos=2,
                properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=2))
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(f"{base}/a/b", b"both", qos=2)
    c.wait_messages(1, 5)
    time.sleep(1.0)
    got = c.received()
    assert len(got) == 1, f"expected exactly one delivery, got {len(got)}"
    assert got[0].qos == 2, "delivery must use the maximum QoS of the matching subscriptions"
    ids = got[0].prop("SubscriptionIdentifier")
    assert ids is not None, "no Subscription Identifier on the delivered message"
    assert sorted(ids) == [1, 2]

    # Only the '#' subscription matches a deeper topic: only its identifier.
    pub.publish(f"{base}/a/b/c", b"deep", qos=2)
    deep = c.wait_messages(1, 5, topic=f"{base}/a/b/c")
    assert len(deep) == 1 and deep[0].prop("SubscriptionIdentifier") == [2]


def test_overlapping_subscriptions_v311(drover, clients):
    base = uid("ovl311")
    c = Paho(drover.mqtt_port, version=4)
    clients.append(c)
    c.connect()
    c.subscribe(f"{base}/a/+", qos=0)
    c.subscribe(f"{base}/a/#", qos=2)
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(f"{base}/a/b", b"both", qos=2)
    c.wait_messages(1, 5)
    time.sleep(1.0)
    got = c.received()
    assert 1 <= len(got) <= 2, f"{len(got)} deliveries for 2 overlapping subscriptions"
    assert all(m.payload == b"both" for m in got)


def test_no_local(drover, clients):
    topic = uid("nolocal")
    me = Paho(drover.mqtt_port)
    other = Paho(drover.mqtt_port)
    clients += [me, other]
    me.connect()
    other.connect()
    me.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
    me.publish(topic, b"mine", qos=1)
    other.publish(topic, b"theirs", qos=1)
    me.wait_messages(1, 5)
    time.sleep(0.7)
    assert [m.payload for m in me.received()] == [b"theirs"]


def test_without_no_local_own_messages_come_back(drover, clients):
    topic = uid("local")
    me = Paho(drover.mqtt_port)
    clients.append(me)
    me.connect()
    me.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=False))
    me.publish(topic, b"mine", qos=1)
    assert [m.payload for m in me.wait_messages(1, 5)] == [b"mine"]


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_unsubscribe_stops_delivery(drover, clients, version):
    topic = uid("unsub")
    c = Paho(drover.mqtt_port, version=version)
    clients.append(c)
    c.connect()
    c.subscribe(topic, qos=1)
    c.subscribe(topic + "/keep", qos=1)
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"1", qos=1)
    assert len(c.wait_messages(1, 5)) == 1
    c.unsubscribe(topic)
    pub.publish(topic, b"2", qos=1)
    pub.publish(topic + "/keep", b"3", qos=1)
    c.wait_messages(1, 5, topic=topic + "/keep")
    time.sleep(0.5)
    assert [m.payload for m in c.received()] == [b"1", b"3"]


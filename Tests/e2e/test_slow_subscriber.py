"""A subscriber that never reads must not make the broker grow without bound or stall others."""

import os
import time

import pytest

from clients import Paho, PacketTypes, props, uid
from mqtt_raw import PINGRESP, RawClient, publish_packet

MOSQUITTO = os.environ.get("DROVER_E2E_MOSQUITTO") == "1"


@pytest.fixture(scope="module")
def small_queue(drover_module_factory):
    return drover_module_factory(DROVER_LIMITS_MAX_QUEUED_MESSAGES=100)


def test_slow_subscriber_is_bounded(small_queue, clients):
    srv = small_queue

    slow = RawClient(srv.mqtt_port, rcvbuf=4096)
    clients.append(slow)
    assert slow.connect(uid("slow"), version=4).reason == 0
    assert slow.subscribe([("slow/#", 0)], v5=False) == [0]
    # From here on `slow` never reads its socket.

    if not MOSQUITTO:
        dropped_before = srv.metric("drover_mqtt_messages_dropped_total", reason="queue_full")
    rss_before = srv.rss_kb()

    pub = RawClient(srv.mqtt_port, timeout=60)
    clients.append(pub)
    assert pub.connect(uid("flood"), version=4).reason == 0
    payload = b"p" * 1024
    one = publish_packet("slow/x", payload, qos=0, v5=False)
    n = 20000
    t0 = time.monotonic()
    batch = one * 500
    for _ in range(n // 500):
        pub.send(batch)
    pub.send(b"\xc0\x00")  # PINGRESP comes back once the broker has read all of the above
    assert pub.expect(PINGRESP, timeout=60), "broker stopped reading the publisher"
    flood_secs = time.monotonic() - t0

    # Meanwhile, an unrelated subscriber is served promptly.
    fresh = Paho(srv.mqtt_port)
    clients.append(fresh)
    fresh.connect()
    topic = uid("fresh")
    fresh.subscribe(topic, qos=1)
    other = Paho(srv.mqtt_port)
    clients.append(other)
    other.connect()
    t1 = time.monotonic()
    other.publish(topic, b"still-alive", qos=1, timeout=2)
    got = fresh.wait_messages(1, timeout=2)
    assert [m.payload for m in got] == [b"still-alive"], "broker stalled by the slow subscriber"
    assert time.monotonic() - t1 < 2.0

    rss_after = srv.rss_kb()
    growth_mb = (rss_after - rss_before) / 1024
    assert growth_mb < 100, f"RSS grew by {growth_mb:.0f} MB for a stuck subscriber (flood took {flood_secs:.1f}s)"

    if not MOSQUITTO:
        def dropped():
            return srv.metric("drover_mqtt_messages_dropped_total", reason="queue_full")
        deadline = time.monotonic() + 5
        while dropped() <= dropped_before and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"slow subscriber: queue_full drops {dropped() - dropped_before:.0f}, RSS growth "
              f"{growth_mb:.1f} MB, flood of {n} took {flood_secs:.1f}s")
        assert dropped() > dropped_before, "no queue_full drops counted for a subscriber that never reads"
    assert srv.alive()


def test_offline_session_queue_is_bounded(small_queue, clients):
    """An offline session's queue holds at most its limit. Drover refuses what does not fit
    with PUBACK 0x97 (Quota exceeded), so that nothing acknowledged is lost; Mosquitto
    acknowledges and drops."""
    srv = small_queue
    topic, cid = uid("offq"), uid("offline")
    exp = props(PacketTypes.CONNECT, SessionExpiryInterval=300)
    s = Paho(srv.mqtt_port, client_id=cid)
    clients.append(s)
    s.connect(clean_start=True, properties=exp)
    s.subscribe(topic, qos=1)
    s.disconnect()
    if not MOSQUITTO:
        refused_before = srv.metric("drover_mqtt_publishes_refused_total", reason="quota_exceeded")

    pub = Paho(srv.mqtt_port)
    clients.append(pub)
    pub.connect()
    infos = [pub.publish(topic, str(i).encode(), qos=1, wait=False) for i in range(300)]
    deadline = time.monotonic() + 20
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
    assert all(i.is_published() for i in infos), "some publishes got no PUBACK at all"
    codes = [pub.pubacks.get(i.mid) for i in infos]

    back = Paho(srv.mqtt_port, client_id=cid)
    clients.append(back)
    back.connect(clean_start=False, properties=exp)
    assert back.session_present
    back.wait_messages(100, 5)
    time.sleep(1.0)
    got = [int(m.payload) for m in back.received()]
    assert 0 < len(got) <= 100, f"{len(got)} messages kept for an offline session with a queue of 100"
    assert got == sorted(got) and len(set(got)) == len(got), "queued messages reordered or duplicated"
    if not MOSQUITTO:
        accepted = [i for i, c in enumerate(codes) if c == 0]
        refused = [i for i, c in enumerate(codes) if c == 0x97]
        assert len(accepted) + len(refused) == 300, f"unexpected PUBACK codes: {set(codes)}"
        assert got == accepted, "the messages acknowledged with success are not exactly those delivered"
        assert len(accepted) == 100
        assert srv.metric("drover_mqtt_publishes_refused_total", reason="quota_exceeded") - refused_before == 200

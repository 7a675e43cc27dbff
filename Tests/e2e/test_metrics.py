"""The Prometheus /metrics endpoint: names, labels and that the numbers move."""

import os
import urllib.request

import pytest

from clients import Paho, PacketTypes, props, uid, wait_until
from conftest import metric_names, metric_sum

pytestmark = pytest.mark.skipif(os.environ.get("DROVER_E2E_MOSQUITTO") == "1",
                                reason="/metrics and /health are Drover-only")

REQUIRED = [
    "drover_mqtt_connections",
    "drover_mqtt_messages_received_total",
    "drover_mqtt_messages_sent_total",
    "drover_mqtt_bytes_received_total",
    "drover_mqtt_bytes_sent_total",
    "drover_mqtt_messages_dropped_total",
    "drover_mqtt_sessions",
    "drover_mqtt_subscriptions",
    "drover_mqtt_retained_messages",
    "drover_mqtt_publishes_refused_total",
    "drover_mqtt_queued_messages",
    "drover_mqtt_queued_bytes",
]


def test_health_endpoint(drover):
    with urllib.request.urlopen(f"http://127.0.0.1:{drover.http_port}/health", timeout=5) as r:
        assert r.status == 200


def test_metrics_content_type_and_names(drover):
    with urllib.request.urlopen(f"http://127.0.0.1:{drover.http_port}/metrics", timeout=5) as r:
        assert r.status == 200
        ctype = r.headers.get("Content-Type", "")
        body = r.read().decode()
    assert ctype.startswith("text/plain"), f"/metrics Content-Type {ctype!r}"
    names = metric_names(drover.metrics())
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f"/metrics lacks {missing}; it has {sorted(names)}"
    for n in REQUIRED:
        assert f"# TYPE {n} " in body, f"no # TYPE line for {n}"


def test_metrics_follow_traffic(drover_factory, clients):
    srv = drover_factory()
    m0 = srv.metrics()

    sub = Paho(srv.mqtt_port)
    clients.append(sub)
    sub.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    topic = uid("metrics")
    sub.subscribe(topic, qos=2)
    sub.subscribe(topic + "/other", qos=0)
    pub = Paho(srv.mqtt_port)
    clients.append(pub)
    pub.connect()
    third = Paho(srv.mqtt_port, version=4)
    clients.append(third)
    third.connect()

    assert wait_until(lambda: srv.metric("drover_mqtt_connections") == 3, 3), \
        f"drover_mqtt_connections={srv.metric('drover_mqtt_connections')}, expected 3"
    assert wait_until(lambda: srv.metric("drover_mqtt_subscriptions") == 2, 3), \
        f"drover_mqtt_subscriptions={srv.metric('drover_mqtt_subscriptions')}, expected 2"
    assert srv.metric("drover_mqtt_sessions") >= 3

    payload = b"m" * 100
    for _ in range(10):
        pub.publish(topic, payload, qos=1)
    for q in (0, 2):
        pub.publish(topic, payload, qos=q)
    assert len(sub.wait_messages(12, 5)) == 12

    def delta(name, **labels):
        return srv.metric(name, **labels) - metric_sum(m0, name, **labels)

    assert wait_until(lambda: delta("drover_mqtt_messages_received_total", qos="1") >= 10, 3), \
        f"received qos=1 delta {delta('drover_mqtt_messages_received_total', qos='1')}"
    assert delta("drover_mqtt_messages_received_total", qos="0") >= 1
    assert delta("drover_mqtt_messages_received_total", qos="2") >= 1
    assert wait_until(lambda: delta("drover_mqtt_messages_sent_total", qos="1") >= 10, 3)
    assert delta("drover_mqtt_messages_sent_total", qos="2") >= 1
    assert delta("drover_mqtt_messages_sent_total", qos="0") >= 1
    assert delta("drover_mqtt_bytes_received_total") >= 12 * len(payload)
    assert delta("drover_mqtt_bytes_sent_total") >= 12 * len(payload)

    m = srv.metrics()
    for name in ("drover_mqtt_messages_received_total", "drover_mqtt_messages_sent_total"):
        qos_values = {dict(lbls).get("qos") for (n, lbls) in m if n == name}
        assert {"0", "1", "2"} <= qos_values, f"{name} qos labels: {qos_values}"

    # Retained gauge follows set / clear.
    r0 = srv.metric("drover_mqtt_retained_messages")
    pub.publish(topic + "/r1", b"1", qos=1, retain=True)
    pub.publish(topic + "/r2", b"2", qos=1, retain=True)
    assert wait_until(lambda: srv.metric("drover_mqtt_retained_messages") == r0 + 2, 3)
    pub.publish(topic + "/r1", b"", qos=1, retain=True)
    assert wait_until(lambda: srv.metric("drover_mqtt_retained_messages") == r0 + 1, 3)

    # A persistent session outlives its connection; the connection gauge drops.
    sessions_before = srv.metric("drover_mqtt_sessions")
    sub.disconnect()
    assert wait_until(lambda: srv.metric("drover_mqtt_connections") == 2, 3)
    assert srv.metric("drover_mqtt_sessions") == sessions_before, "persistent session not counted"
    third.disconnect()
    assert wait_until(lambda: srv.metric("drover_mqtt_connections") == 1, 3)

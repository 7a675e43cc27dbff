"""Plain publish/subscribe with mosquitto_pub/mosquitto_sub, both protocol versions; '$' topics."""

import time

import pytest

from clients import MosqSub, mosq_pub, uid

VERSIONS = ["mqttv311", "mqttv5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_wildcards(drover, clients, version):
    base = uid("wild")
    plus = MosqSub(drover.mqtt_port, [f"{base}/+/temp"], version=version, qos=1)
    hash_ = MosqSub(drover.mqtt_port, [f"{base}/#"], version=version, qos=1)
    clients += [plus, hash_]
    plus.wait_subscribed()
    hash_.wait_subscribed()

    published = [f"{base}/room1/temp", f"{base}/room1/hum", f"{base}/room2/temp",
                 f"{base}/a/b/temp", base]
    for i, t in enumerate(published):
        mosq_pub(drover.mqtt_port, t, f"p{i}", version=version, qos=1)
    mosq_pub(drover.mqtt_port, f"{base}-sibling/room1/temp", "nope", version=version, qos=1)

    # A final marker matched by both: once it is in, everything before it is too.
    mosq_pub(drover.mqtt_port, f"{base}/end/temp", "end", version=version, qos=1)
    got_plus = plus.wait_messages(3, timeout=10)
    got_hash = hash_.wait_messages(len(published) + 1, timeout=10)

    assert [(m.topic, m.payload) for m in got_plus] == [
        (f"{base}/room1/temp", "p0"), (f"{base}/room2/temp", "p2"), (f"{base}/end/temp", "end")]
    # 'base/#' also matches 'base' itself (the parent level).
    assert [(m.topic, m.payload) for m in got_hash] == (
        [(t, f"p{i}") for i, t in enumerate(published)] + [(f"{base}/end/temp", "end")])


@pytest.mark.parametrize("version", VERSIONS)
def test_dollar_topics_not_matched_by_hash(drover, clients, version):
    base = uid("dollar")
    everything = MosqSub(drover.mqtt_port, ["#"], version=version)
    plus_first = MosqSub(drover.mqtt_port, [f"+/{base}"], version=version)
    explicit = MosqSub(drover.mqtt_port, [f"$test/{base}"], version=version)
    clients += [everything, plus_first, explicit]
    for s in (everything, plus_first, explicit):
        s.wait_subscribed()
    mosq_pub(drover.mqtt_port, f"$test/{base}", "dollar", version=version)
    mosq_pub(drover.mqtt_port, f"normal/{base}", "normal", version=version)

    assert [(m.topic, m.payload) for m in explicit.wait_messages(1, 10)] == [(f"$test/{base}", "dollar")]
    plus_first.wait_messages(1, 10)
    # Ordering marker: once the '#' subscriber has it, it has seen everything published before.
    mosq_pub(drover.mqtt_port, f"normal/{base}/end", "end", version=version)
    end = (f"normal/{base}/end", "end")

    def mine():
        return [(m.topic, m.payload) for m in everything.messages() if base in m.topic]
    deadline = time.monotonic() + 10
    while end not in mine() and time.monotonic() < deadline:
        time.sleep(0.05)
    mine = mine()
    assert end in mine, everything.output()
    assert (f"$test/{base}", "dollar") not in mine, "'#' matched a topic starting with '$'"
    assert mine[:1] == [(f"normal/{base}", "normal")]
    assert [(m.topic, m.payload) for m in plus_first.messages()] == [(f"normal/{base}", "normal")], \
        "'+/x' matched a topic starting with '$'"


@pytest.mark.parametrize("version", VERSIONS)
def test_qos1_pub_sub_payload_bytes_intact(drover, clients, version):
    topic = uid("payload") + "/ü/ñ"
    sub = MosqSub(drover.mqtt_port, [topic], version=version, qos=1, count=1)
    clients.append(sub)
    sub.wait_subscribed()
    payload = "héllo wörld ✓ " + "x" * 5000
    mosq_pub(drover.mqtt_port, topic, payload, version=version, qos=1)
    assert sub.wait_exit(10) == 0, sub.output()
    msgs = sub.messages()
    assert [(m.topic, m.payload, m.qos) for m in msgs] == [(topic, payload, 1)]

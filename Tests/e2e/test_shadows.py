"""Device shadows: the iot-data HTTP operations with boto3, the MQTT topics with paho, both
together (a desired change over HTTP reaches the device on /update/delta), durability."""

from __future__ import annotations

import json
import os
import time

import pytest

import aws
from clients import Paho, uid, wait_until

pytestmark = pytest.mark.skipif(os.environ.get("DROVER_E2E_MOSQUITTO") == "1", reason="Drover-only")


def body(response) -> dict:
    return json.loads(response["payload"].read())


def registered_thing(srv, prefix: str) -> str:
    """Shadows exist for things in the registry (shadows.require_registered_thing)."""
    thing = uid(prefix).replace("-", "_")
    aws.iot(srv).create_thing(thingName=thing)
    return thing


def test_iot_data_update_get_delete(drover):
    data = aws.iot_data(drover)
    thing = registered_thing(drover, "shadow")
    accepted = body(data.update_thing_shadow(thingName=thing, payload=json.dumps(
        {"state": {"desired": {"color": "red", "level": 5}}, "clientToken": "tok-1"})))
    assert accepted["version"] == 1 and accepted["clientToken"] == "tok-1"
    assert accepted["state"] == {"desired": {"color": "red", "level": 5}}
    assert isinstance(accepted["timestamp"], int) and isinstance(accepted["metadata"]["desired"]["level"]["timestamp"], int)

    body(data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"reported": {"color": "blue", "level": 5}}})))
    doc = body(data.get_thing_shadow(thingName=thing))
    assert doc["version"] == 2
    assert doc["state"]["desired"] == {"color": "red", "level": 5}
    assert doc["state"]["reported"] == {"color": "blue", "level": 5}
    assert doc["state"]["delta"] == {"color": "red"}

    # A null deletes a key; the version must match when given.
    with pytest.raises(data.exceptions.ConflictException):
        data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"color": None}}, "version": 1}))
    body(data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"color": None}}, "version": 2})))
    doc = body(data.get_thing_shadow(thingName=thing))
    assert doc["state"]["desired"] == {"level": 5} and "delta" not in doc["state"]

    with pytest.raises(data.exceptions.InvalidRequestException):
        data.update_thing_shadow(thingName=thing, payload=b"{not json")
    deep = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}}
    with pytest.raises(data.exceptions.InvalidRequestException) as e:
        data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": deep}}))
    assert "nesting" in e.value.response["Error"]["Message"]
    # Eight levels are allowed.
    data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"reported": deep["a"]["b"]}}))
    with pytest.raises(data.exceptions.RequestEntityTooLargeException):
        data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"big": "x" * 70000}}}))
    # Under 64 KiB of state, but its metadata (a timestamp per element) would make it 800 KB:
    # refused as too large, and the shadow is as it was.
    before = body(data.get_thing_shadow(thingName=thing))
    with pytest.raises(data.exceptions.RequestEntityTooLargeException) as e:
        data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"a": [1] * 30000}}},
                                                                      separators=(",", ":")))
    assert e.value.response["Error"]["Message"] == "The payload exceeds the maximum size allowed"
    after = body(data.get_thing_shadow(thingName=thing))
    assert after["version"] == before["version"] and after["state"] == before["state"]

    deleted = body(data.delete_thing_shadow(thingName=thing))
    assert deleted["version"] == 4
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_thing_shadow(thingName=thing)


def test_named_shadows_and_listing(drover):
    data = aws.iot_data(drover)
    thing = registered_thing(drover, "named")
    for name in ("config", "telemetry", "alpha"):
        data.update_thing_shadow(thingName=thing, shadowName=name, payload=json.dumps({"state": {"reported": {"n": name}}}))
    assert body(data.get_thing_shadow(thingName=thing, shadowName="config"))["state"]["reported"] == {"n": "config"}
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.get_thing_shadow(thingName=thing)  # the classic shadow was never written
    listed = data.list_named_shadows_for_thing(thingName=thing)
    assert listed["results"] == ["alpha", "config", "telemetry"]
    data.delete_thing_shadow(thingName=thing, shadowName="alpha")
    assert data.list_named_shadows_for_thing(thingName=thing)["results"] == ["config", "telemetry"]


def test_mqtt_topics_and_delta_from_http(drover, clients):
    thing = registered_thing(drover, "dev")
    base = f"$aws/things/{thing}/shadow"
    device = Paho(drover.mqtt_port, client_id=thing)
    clients.append(device)
    device.connect()
    for suffix in ("update/accepted", "update/rejected", "update/delta", "update/documents", "get/accepted", "get/rejected"):
        device.subscribe(f"{base}/{suffix}", qos=1)

    # get before the shadow exists: rejected with 404.
    device.publish(f"{base}/get", json.dumps({"clientToken": "g0"}).encode(), qos=1)
    rejected = json.loads(device.wait_messages(1, 5, topic=f"{base}/get/rejected")[0].payload)
    assert rejected["code"] == 404 and rejected["clientToken"] == "g0"

    # The operator sets desired over HTTP; the device gets the delta at once.
    t0 = time.monotonic()
    aws.iot_data(drover).update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"fan": "on"}}}))
    delta = json.loads(device.wait_messages(1, 5, topic=f"{base}/update/delta")[0].payload)
    assert delta["state"] == {"fan": "on"} and delta["version"] == 1
    assert time.monotonic() - t0 < 2

    # The device reports; accepted, documents, and no new delta.
    device.publish(f"{base}/update", json.dumps({"state": {"reported": {"fan": "on"}}, "clientToken": "r1"}).encode(), qos=1)
    # (The HTTP update was announced on /update/accepted too, without a client token.)
    accepted = [json.loads(m.payload) for m in device.wait_messages(2, 5, topic=f"{base}/update/accepted")]
    assert [a.get("clientToken") for a in accepted] == [None, "r1"] and accepted[-1]["version"] == 2
    documents = device.wait_messages(2, 5, topic=f"{base}/update/documents")
    last = json.loads(documents[-1].payload)
    assert last["previous"]["version"] == 1 and last["current"]["state"]["reported"] == {"fan": "on"}
    time.sleep(0.3)
    assert len(device.received(topic=f"{base}/update/delta")) == 1

    device.publish(f"{base}/get", b"", qos=1)
    got = json.loads(device.wait_messages(1, 5, topic=f"{base}/get/accepted")[0].payload)
    assert got["state"] == {"desired": {"fan": "on"}, "reported": {"fan": "on"}} and got["version"] == 2

    # A version conflict over MQTT.
    device.publish(f"{base}/update", json.dumps({"state": {"reported": {"fan": "off"}}, "version": 1}).encode(), qos=1)
    conflict = json.loads(device.wait_messages(1, 5, topic=f"{base}/update/rejected")[0].payload)
    assert conflict["code"] == 409


def test_offline_device_gets_the_delta_on_reconnect(drover, clients):
    thing = registered_thing(drover, "sleepy")
    topic = f"$aws/things/{thing}/shadow/update/delta"
    from clients import PacketTypes, props
    exp = props(PacketTypes.CONNECT, SessionExpiryInterval=300)
    device = Paho(drover.mqtt_port, client_id=thing)
    clients.append(device)
    device.connect(clean_start=True, properties=exp)
    device.subscribe(topic, qos=1)
    device.disconnect()
    aws.iot_data(drover).update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"mode": "eco"}}}))
    back = Paho(drover.mqtt_port, client_id=thing)
    clients.append(back)
    back.connect(clean_start=False, properties=exp)
    assert json.loads(back.wait_messages(1, 5, topic=topic)[0].payload)["state"] == {"mode": "eco"}


def test_publish_through_iot_data(drover, clients):
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    topic = "plant/" + uid("line") + "/cmd"
    sub.subscribe(topic, qos=1)
    aws.iot_data(drover).publish(topic=topic, qos=1, payload=b"start")
    assert [m.payload for m in sub.wait_messages(1, 5)] == [b"start"]


def test_shadows_survive_kill9_and_go_with_their_thing(tmp_path_factory):
    from test_durability import DurableServer, SQLITE
    srv = DurableServer(tmp_path_factory.mktemp("shadows"), dict(SQLITE))
    try:
        srv.start()
        aws.iot(srv).create_thing(thingName="durable_device")
        data = aws.iot_data(srv)
        data.update_thing_shadow(thingName="durable_device", payload=json.dumps({"state": {"desired": {"v": 1}}}))
        data.update_thing_shadow(thingName="durable_device", shadowName="config", payload=json.dumps({"state": {"desired": {"c": 2}}}))
        srv.kill9()
        srv.start()
        data = aws.iot_data(srv)
        assert body(data.get_thing_shadow(thingName="durable_device"))["state"]["desired"] == {"v": 1}
        assert body(data.get_thing_shadow(thingName="durable_device", shadowName="config"))["version"] == 1
        aws.iot(srv).delete_thing(thingName="durable_device")
        assert wait_until(lambda: _missing(data, "durable_device"), 3), "the deleted thing's shadow remained"
        with pytest.raises(data.exceptions.ResourceNotFoundException):
            data.get_thing_shadow(thingName="durable_device", shadowName="config")
    finally:
        srv.stop()


def _missing(data, thing) -> bool:
    try:
        data.get_thing_shadow(thingName=thing)
        return False
    except data.exceptions.ResourceNotFoundException:
        return True


def test_too_many_requests_in_flight_is_429(drover_factory, clients):
    from mqtt_raw import RawClient, publish_packet
    srv = drover_factory(DROVER_SHADOWS_MAX_IN_FLIGHT=2)
    thing = registered_thing(srv, "busy")
    base = f"$aws/things/{thing}/shadow"
    watcher = Paho(srv.mqtt_port)
    clients.append(watcher)
    watcher.connect()
    watcher.subscribe(f"{base}/update/accepted", qos=1)
    watcher.subscribe(f"{base}/update/rejected", qos=1)
    c = RawClient(srv.mqtt_port)
    clients.append(c)
    assert c.connect(uid("burst")).reason == 0
    burst = b"".join(publish_packet(f"{base}/update", json.dumps({"state": {"reported": {"n": i}}}).encode())
                     for i in range(60))
    c.send(burst)
    assert wait_until(lambda: len(watcher.received()) >= 60, 10), f"only {len(watcher.received())} answers to 60 requests"
    time.sleep(0.3)
    rejected = [json.loads(m.payload) for m in watcher.received(topic=f"{base}/update/rejected")]
    accepted = watcher.received(topic=f"{base}/update/accepted")
    assert len(accepted) + len(rejected) == 60
    assert rejected and all(r["code"] == 429 for r in rejected), rejected[:3]
    assert accepted, "nothing was accepted"
    # Once the burst is over the shadow takes requests again.
    data = aws.iot_data(srv)
    assert body(data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"reported": {"n": "done"}}})))["version"] == len(accepted) + 1

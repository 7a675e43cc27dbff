"""MQTT 5 request/response properties passthrough and Message Expiry Interval."""

import os
import time

from clients import Paho, PacketTypes, props, uid


def test_request_response_properties_pass_through(drover, clients):
    topic = uid("req")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=1)
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    user = [("k", "v1"), ("k", "v2"), ("another", "ü-ñ"), ("empty", "")]
    p = props(PacketTypes.PUBLISH, ResponseTopic=topic + "/reply",
              CorrelationData=b"\x00\x01corr\xff", UserProperty=user,
              ContentType="application/json", PayloadFormatIndicator=1)
    pub.publish(topic, b'{"q": 1}', qos=1, properties=p)
    msgs = sub.wait_messages(1, 5)
    assert len(msgs) == 1
    m = msgs[0]
    assert m.payload == b'{"q": 1}'
    assert m.prop("ResponseTopic") == topic + "/reply"
    assert m.prop("CorrelationData") == b"\x00\x01corr\xff"
    assert m.prop("UserProperty") == user, "user properties changed or reordered"
    assert m.prop("ContentType") == "application/json"
    assert m.prop("PayloadFormatIndicator") == 1


def test_request_response_round_trip(drover, clients):
    req_topic = uid("svc") + "/req"
    responder = Paho(drover.mqtt_port)
    clients.append(responder)
    responder.connect()
    responder.subscribe(req_topic, qos=1)
    requester = Paho(drover.mqtt_port)
    clients.append(requester)
    requester.connect()
    reply_topic = uid("reply")
    requester.subscribe(reply_topic, qos=1)
    requester.publish(req_topic, b"ping", qos=1, properties=props(
        PacketTypes.PUBLISH, ResponseTopic=reply_topic, CorrelationData=b"id-42"))
    req = responder.wait_messages(1, 5)[0]
    responder.publish(req.prop("ResponseTopic"), b"pong", qos=1, properties=props(
        PacketTypes.PUBLISH, CorrelationData=req.prop("CorrelationData")))
    rep = requester.wait_messages(1, 5)
    assert [(m.payload, m.prop("CorrelationData")) for m in rep] == [(b"pong", b"id-42")]


def test_message_expiry_for_offline_session(drover, clients):
    topic = uid("expiry")
    cid = uid("sleeper")
    exp = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    s = Paho(drover.mqtt_port, client_id=cid)
    clients.append(s)
    s.connect(clean_start=True, properties=exp)
    s.subscribe(topic, qos=1)
    s.disconnect()

    mosquitto = os.environ.get("DROVER_E2E_MOSQUITTO") == "1"
    expired_before = 0 if mosquitto else drover.metric("drover_mqtt_messages_dropped_total", reason="expired")

    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"short", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(topic, b"long", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(2.5)

    back = Paho(drover.mqtt_port, client_id=cid)
    clients.append(back)
    back.connect(clean_start=False, properties=exp)
    assert back.session_present
    back.wait_messages(1, 5)
    time.sleep(0.5)
    got = back.received()
    assert [m.payload for m in got] == [b"long"], "expired message delivered (or the live one lost)"
    left = got[0].prop("MessageExpiryInterval")
    assert left is not None, "Message Expiry Interval not forwarded"
    # 2.5 s were spent in the server: the remaining lifetime must have been reduced.
    assert 50 <= left <= 59, f"MessageExpiryInterval {left} not reduced by the time spent queued"

    if not mosquitto:
        def dropped():
            return drover.metric("drover_mqtt_messages_dropped_total", reason="expired")
        deadline = time.monotonic() + 3
        while dropped() < expired_before + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dropped() >= expired_before + 1, "expired message not counted as dropped (reason=expired)"


def test_message_expiry_forwarded_to_online_subscriber(drover, clients):
    topic = uid("expiry-live")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic, qos=1)
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    pub.publish(topic, b"x", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    pub.publish(topic, b"y", qos=1)
    got = sub.wait_messages(2, 5)
    assert [m.payload for m in got] == [b"x", b"y"]
    assert 58 <= got[0].prop("MessageExpiryInterval") <= 60
    assert got[1].prop("MessageExpiryInterval") is None, "expiry invented for a message without one"

"""Topic filter matching (the examples of MQTT 5.0 section 4.7) and many concurrent publishers."""

import threading
import time

import pytest

from clients import Paho, uid

# filter (with {b} for a unique base) -> topics (relative to {b}) it must / must not match
CASES = [
    ("{b}/sport/tennis/player1/#",
     ["{b}/sport/tennis/player1", "{b}/sport/tennis/player1/ranking", "{b}/sport/tennis/player1/score/wimbledon"],
     ["{b}/sport/tennis/player2", "{b}/sport/tennis"]),
    ("{b}/sport/#", ["{b}/sport", "{b}/sport/x"], ["{b}/sports"]),
    ("{b}/sport/tennis/+", ["{b}/sport/tennis/player1", "{b}/sport/tennis/"],
     ["{b}/sport/tennis/player1/ranking", "{b}/sport/tennis"]),
    ("{b}/sport/+", ["{b}/sport/"], ["{b}/sport"]),
    ("+/{b}/+", ["/{b}/x", "a/{b}/"], ["{b}/x", "a/{b}"]),
    ("{b}//x", ["{b}//x"], ["{b}/x", "{b}/a/x"]),
    ("{b}/+/+/c", ["{b}/a/b/c", "{b}///c"], ["{b}/a/c", "{b}/a/b/c/d"]),
]


@pytest.mark.parametrize("flt,match,nomatch", CASES, ids=[c[0] for c in CASES])
def test_topic_filter_matching(drover, clients, flt, match, nomatch):
    b = uid("m")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(flt.format(b=b), qos=1)
    pub = Paho(drover.mqtt_port)
    clients.append(pub)
    pub.connect()
    for t in nomatch + match:  # the non-matching ones first: when the last match is in, they would be too
        pub.publish(t.format(b=b), t.encode(), qos=1)
    sub.wait_messages(len(match), 5)
    time.sleep(0.3)
    got = sorted(m.topic for m in sub.received())
    assert got == sorted(t.format(b=b) for t in match)


def test_many_concurrent_publishers(drover, clients):
    topic = uid("fanin")
    sub = Paho(drover.mqtt_port)
    clients.append(sub)
    sub.connect()
    sub.subscribe(topic + "/+", qos=1)
    pubs = []
    for i in range(20):
        p = Paho(drover.mqtt_port)
        clients.append(p)
        p.connect()
        pubs.append(p)
    per = 50
    errors = []

    def run(i, p):
        try:
            infos = [p.publish(f"{topic}/{i}", f"{i}:{k}".encode(), qos=1, wait=False) for k in range(per)]
            for info in infos:
                info.wait_for_publish(20)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(pubs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    total = len(pubs) * per
    sub.wait_messages(total, 20)
    time.sleep(0.3)
    got = [m.payload.decode() for m in sub.received()]
    assert len(got) == total and len(set(got)) == total, f"{len(got)} received, {len(set(got))} distinct"
    # Per publisher, order is kept.
    for i in range(len(pubs)):
        seq = [int(x.split(":")[1]) for x in got if x.startswith(f"{i}:")]
        assert seq == list(range(per)), f"publisher {i}: out of order or missing"

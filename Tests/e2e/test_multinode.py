"""Two `drover serve` processes on one control-plane database, each with its own data directory
(its broker's sessions) and the same CA: one SQLite file (`storage.database`), and one
PostgreSQL database (`storage.backend: postgres`, when DROVER_E2E_POSTGRES_URL names a
server). What one node changes, the other takes in from the change feed at once (PostgreSQL's
notifications), or within `storage.follow_interval` (0.25 s by default) on SQLite:

- a thing and certificate made through node A connect through node B;
- a certificate revoked on node A drops the device's live connection on node B within a second;
- a desired-state change made over HTTP on node A reaches the device on node B on
  `/update/delta` (AWS IoT Device SDK v2);
- `kill -9` of node A during a burst of CreateThing calls: node B carries on, and every
  acknowledged thing is there.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

import aws
import conftest as e2e
from clients import uid, wait_until
from test_device_identity import TlsClient, policy_document, provision, sdk_connection, shadow_policy
from test_durability import SQLITE, DurableServer


def backends() -> list[str]:
    if e2e.BACKEND == "postgres":
        return ["postgres"]
    return ["sqlite"] + (["postgres"] if e2e.POSTGRES_URL else [])


@pytest.fixture(params=backends())
def shared(request):
    """The environment that puts a node on the shared database: for SQLite, node A's file."""
    if request.param == "postgres":
        url = e2e.new_postgres_database()
        return lambda a_data: {"DROVER_STORAGE_BACKEND": "postgres", "DROVER_STORAGE_URL": url}
    return lambda a_data: dict(SQLITE, DROVER_E2E_SQLITE_ONLY="1",
                               **({} if a_data is None else {"DROVER_STORAGE_DATABASE": str(a_data / "drover.sqlite")}))


@pytest.fixture
def nodes(tmp_path, shared):
    a = DurableServer(tmp_path / "a", dict(shared(None), DROVER_E2E_TLS="1"))
    a.workdir.mkdir()
    a.start()
    b_dir = tmp_path / "b"
    (b_dir / "data").mkdir(parents=True)
    # The same CA (devices trust one), its own data directory, the one database.
    for name in ("ca.pem", "ca.key"):
        shutil.copy(a.data_dir / name, b_dir / "data" / name)
    b = DurableServer(b_dir, dict(shared(a.data_dir), DROVER_E2E_TLS="1"))
    b.start()
    # Node B made no admin key of its own: the database had one. Its clients use A's.
    shutil.copy(a.data_dir / "admin-credentials", b.data_dir / "admin-credentials")
    yield a, b
    b.stop()
    a.stop()


def test_a_device_made_on_one_node_connects_and_is_revoked_through_the_other(nodes, tmp_path):
    a, b = nodes
    iot_a = aws.iot(a)
    policy = "multi_" + uid("p")[-6:]
    iot_a.create_policy(policyName=policy, policyDocument=policy_document())
    made = time.monotonic()
    dev = provision(a, tmp_path, policy=policy)
    # Connects through B as soon as B has taken the thing in.
    client = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        client = TlsClient(b, dev)
        if client.connect() == 0:
            break
        client.stop()
        client = None
        time.sleep(0.1)
    assert client is not None, f"the device made on A was never accepted by B\n{b.log_tail()}"
    taken_in = time.monotonic() - made
    assert client.subscribe(f"things/{dev.thing}/cmd") == [1]
    # B's policy decisions follow A's changes: a topic outside the policy stays refused.
    assert client.subscribe("things/someone_else/cmd") == [135]
    # Revoked on A: B closes the live connection within a second.
    revoked = time.monotonic()
    iot_a.update_certificate(certificateId=dev.cert_id, newStatus="REVOKED")
    assert client.disconnected.wait(5), "B kept the revoked device connected"
    assert client.disconnected_at - revoked < 1.0, client.disconnected_at - revoked
    client.stop()
    # And it cannot come back through either node.
    for node in (a, b):
        again = TlsClient(node, dev)
        assert again.connect() != 0
        again.stop()
    print(f"taken in by B after {taken_in:.2f} s; revoked connection closed after "
          f"{client.disconnected_at - revoked:.2f} s")


def test_a_desired_change_on_one_node_reaches_the_device_on_the_other(nodes, tmp_path):
    from awscrt import mqtt as crt_mqtt
    from awsiot import iotshadow

    a, b = nodes
    iot_a = aws.iot(a)
    policy = "shadowmulti_" + uid("p")[-6:]
    iot_a.create_policy(policyName=policy, policyDocument=shadow_policy())
    dev = provision(a, tmp_path, policy=policy)
    # Everything A made (thing, certificate, attachments) is on B within the follow interval.
    assert wait_until(lambda: b_has_principal(b, dev), 5)
    connection = sdk_connection(b, dev)
    try:
        shadow = iotshadow.IotShadowClient(connection)
        deltas: list = []
        got = threading.Event()

        def on_delta(event):
            deltas.append(event)
            got.set()

        subscribed, _ = shadow.subscribe_to_shadow_delta_updated_events(
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=dev.thing), crt_mqtt.QoS.AT_LEAST_ONCE, on_delta)
        subscribed.result(10)
        sent = time.monotonic()
        aws.iot_data(a).update_thing_shadow(thingName=dev.thing, payload=json.dumps({"state": {"desired": {"led": "red"}}}))
        assert got.wait(5), "the delta made on A never reached the device on B"
        print(f"delta on B {time.monotonic() - sent:.2f} s after the update on A")
        assert deltas[0] is not None and deltas[0].state == {"led": "red"} and deltas[0].version == 1
        # The device answers through B; A serves the result.
        done = shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(
            thing_name=dev.thing, state=iotshadow.ShadowState(reported={"led": "red"})), crt_mqtt.QoS.AT_LEAST_ONCE)
        done.result(10)
        assert wait_until(lambda: json.loads(aws.iot_data(a).get_thing_shadow(thingName=dev.thing)["payload"].read())
                          ["state"].get("reported") == {"led": "red"}, 5)
        shadow_now = json.loads(aws.iot_data(a).get_thing_shadow(thingName=dev.thing)["payload"].read())
        assert "delta" not in shadow_now["state"] and shadow_now["version"] == 2
    finally:
        connection.disconnect().result(10)


def b_has_principal(b, dev) -> bool:
    try:
        return any(p.endswith(dev.cert_id) for p in aws.iot(b).list_thing_principals(thingName=dev.thing)["principals"])
    except Exception:
        return False


def b_knows(b, thing: str) -> bool:
    try:
        aws.iot(b).describe_thing(thingName=thing)
        return True
    except Exception:
        return False


def test_kill9_of_one_node_during_a_burst_loses_nothing_and_the_other_carries_on(nodes):
    a, b = nodes
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(node, worker: int):
        client = aws.iot(node)
        n = 0
        while not stop.is_set():
            name = f"mn-{worker}-{n}"
            n += 1
            try:
                client.create_thing(thingName=name)
            except Exception:
                if node is a:
                    return  # A went away mid-request: not acknowledged
                raise
            with lock:
                acknowledged.append(name)

    threads = [threading.Thread(target=writer, args=(a if i < 2 else b, i)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert wait_until(lambda: len(acknowledged) >= 80, 30), len(acknowledged)
        a.kill9()
        count = len(acknowledged)
        # B goes on accepting writes while A is gone.
        assert wait_until(lambda: len(acknowledged) >= count + 40, 30), "B stopped with A"
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    names = aws.all_thing_names(b)
    missing = [n for n in acknowledged if n not in names]
    assert not missing, f"{len(missing)} acknowledged creates lost: {missing[:5]}"
    # A comes back on the same database and sees what B made meanwhile.
    a.start()
    assert wait_until(lambda: all(b_knows(a, n) for n in acknowledged[-5:]), 5)
    # Each thing once, with its one audit entry, whichever node made it.
    for name in acknowledged[:10] + acknowledged[-10:]:
        status, _, log = aws.signed(b, "GET", f"/drover/audit?resource={name}")
        assert [e["operation"] for e in log["entries"]] == ["CreateThing"], name


def config_call(node, method: str, path: str, body: dict | None = None) -> dict:
    status, _, answer = aws.signed(node, method, path, json.dumps(body).encode() if body is not None else b"")
    assert status == 200, (status, answer)
    return answer


def test_a_configuration_rollout_runs_once_and_survives_its_node(nodes):
    """The rollout lease: one node rolls a deployment out, so each member's shadow is written
    once; killed mid-rollout, the other node takes the lease when it runs out and finishes."""
    from concurrent.futures import ThreadPoolExecutor

    a, b = nodes
    iot = aws.iot(a)
    group = uid("mgroup")
    iot.create_thing_group(thingGroupName=group)
    names = [f"cfg_{uid('t')[-8:]}_{i}".replace("-", "_") for i in range(120)]

    def make(name):
        client = aws.iot(a)
        client.create_thing(thingName=name)
        client.add_thing_to_thing_group(thingGroupName=group, thingName=name)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, names))
    # Made on B: A (which took the lease first) rolls it out.
    config_call(b, "POST", "/config/templates/mtpl", {"document": {"rate": 7}, "comment": "one"})
    config_call(b, "POST", "/config/deployments/mdep",
                {"templateName": "mtpl", "targetType": "THING_GROUP", "targetName": group})
    assert wait_until(lambda: config_call(b, "GET", "/config/deployments/mdep")["rollout"]["status"] == "COMPLETED", 30)
    data = aws.iot_data(b)
    versions = [json.loads(data.get_thing_shadow(thingName=n, shadowName="config")["payload"].read())["version"]
                for n in names[:30]]
    assert versions == [1] * 30, versions  # written once, not once per node

    # A second version; A is killed while it rolls out; B finishes it.
    config_call(a, "POST", "/config/templates/mtpl/versions", {"document": {"rate": 8}, "comment": "two"})
    config_call(a, "PATCH", "/config/deployments/mdep", {"comment": "to two"})
    a.kill9()
    # B takes the new revision in from the feed, then (with the lease, once A's has run out)
    # rolls it out.
    assert wait_until(lambda: config_call(b, "GET", "/config/deployments/mdep")["templateVersion"] == 2, 5)
    assert wait_until(lambda: config_call(b, "GET", "/config/deployments/mdep")["rollout"] == {
        "members": 120, "applied": 120, "failed": 0, "status": "COMPLETED"}, 40), \
        config_call(b, "GET", "/config/deployments/mdep")["rollout"]
    shadows = [json.loads(data.get_thing_shadow(thingName=n, shadowName="config")["payload"].read()) for n in names]
    assert all(s["state"]["desired"] == {"rate": 8} for s in shadows)
    # At most one repeated write: a member A wrote but had not marked yet is written again by B
    # (the same document).
    assert all(s["version"] in (2, 3) for s in shadows), sorted({s["version"] for s in shadows})
    a.start()


def test_one_shadow_updated_through_both_nodes_at_once_loses_no_update(nodes):
    """Each node reads a shadow, then writes it; a write whose shadow the other node changed
    meanwhile is refused by the store and handled again, so every accepted update counts."""
    a, b = nodes
    thing = uid("race")
    aws.iot(a).create_thing(thingName=thing)
    # B takes the thing in from the feed within a follow interval (what the other tests time).
    assert wait_until(lambda: b_knows(b, thing), 5)
    per_node = 40

    def update(node, side):
        data = aws.iot_data(node)
        versions = []
        for i in range(per_node):
            answer = data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"reported": {side: i}}}))
            versions.append(json.loads(answer["payload"].read())["version"])
        return versions

    results: dict[str, list[int]] = {}
    threads = [threading.Thread(target=lambda n=n, s=s: results.__setitem__(s, update(n, s))) for n, s in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(results) == {"a", "b"}, results
    accepted = results["a"] + results["b"]
    # Every accepted update has a version of its own, and the shadow counts them all.
    assert sorted(accepted) == list(range(1, 2 * per_node + 1)), sorted(accepted)
    shadow = json.loads(aws.iot_data(b).get_thing_shadow(thingName=thing)["payload"].read())
    assert shadow["version"] == 2 * per_node
    assert shadow["state"]["reported"] == {"a": per_node - 1, "b": per_node - 1}

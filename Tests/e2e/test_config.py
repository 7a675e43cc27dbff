"""Fleet configuration: templates deployed into the `config` shadow of a thing group's or thing
type's members, with status, drift, rollback, things that join later, and reset. Devices are
simulated with paho, each running a small configuration agent; the operator uses signed HTTP
(botocore's signer), boto3 and the `drover config` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

import aws
from clients import HOST, mqtt, uid, wait_until
from conftest import drover_bin
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.skipif(os.environ.get("DROVER_E2E_MOSQUITTO") == "1", reason="Drover-only")

V1 = {"sampleRate": 10, "mode": {"eco": True, "level": 2}, "servers": ["a.example", "b.example"]}
V2 = {"sampleRate": 30, "mode": {"eco": False, "level": 2}, "servers": ["a.example"], "debug": "verbose"}


def call(srv, method: str, path: str, body: dict | None = None):
    status, headers, answer = aws.signed(srv, method, path, json.dumps(body).encode() if body is not None else b"")
    return status, headers.get("x-amzn-ErrorType"), answer


def ok(srv, method: str, path: str, body: dict | None = None) -> dict:
    status, error, answer = call(srv, method, path, body)
    assert status == 200, (status, error, answer)
    return answer


def status(srv, deployment: str, state: str = "DRIFTED") -> dict:
    return ok(srv, "GET", f"/config/deployments/{deployment}/status?state={state}&maxResults=250")


def replacement(old: dict, new: dict) -> dict:
    """What to report so that reported becomes `new`: `new`, with null for keys only `old` has."""
    out = dict(new)
    for key, value in old.items():
        if key not in new:
            out[key] = None
        elif isinstance(value, dict) and isinstance(new[key], dict):
            out[key] = replacement(value, new[key])
    return out


class Agent:
    """A device's configuration agent, as a real one works: on connecting and on every delta it
    gets its `config` shadow, runs the desired configuration, and reports what it runs. A local
    change (`pin`) is kept, and reported, until a new configuration arrives."""

    def __init__(self, port: int, thing: str, shadow: str = "config"):
        self.thing = thing
        self.prefix = f"$aws/things/{thing}/shadow/name/{shadow}"
        self.running: dict = {}
        self.pinned: dict = {}
        self.last_desired: dict | None = None
        self.reported: dict = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=thing,
                                  protocol=mqtt.MQTTv311, clean_session=True, reconnect_on_failure=False)
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *args: (self.subscribed.set(), self._get())
        self.client.on_message = self._message
        self.port = port

    def start(self) -> "Agent":
        self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        assert self.subscribed.wait(10), f"{self.thing} did not subscribe"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _connected(self, client, userdata, flags, reason_code, properties):
        client.subscribe([(f"{self.prefix}/update/delta", 1), (f"{self.prefix}/get/accepted", 1)])

    def _get(self) -> None:
        self.client.publish(f"{self.prefix}/get", b"{}", qos=1)

    def _message(self, client, userdata, message):
        if message.topic.endswith("/update/delta"):
            self._get()  # the delta leaves out deleted keys; the whole document has them
            return
        state = json.loads(message.payload).get("state", {})
        desired, reported = state.get("desired", {}), state.get("reported", {})
        with self.lock:
            if desired != self.last_desired:
                self.pinned = {}  # a new configuration replaces local changes
            self.last_desired = desired
            self.running = {**desired, **self.pinned}
            self.reported = reported
            if reported != self.running:
                self._report(replacement(reported, self.running))

    def _report(self, state: dict) -> None:
        self.client.publish(f"{self.prefix}/update", json.dumps({"state": {"reported": state}}), qos=1)

    def pin(self, change: dict) -> None:
        """A technician changes the device by hand."""
        with self.lock:
            self.pinned.update(change)
            self.running = {**self.running, **change}
            self._report(change)


@pytest.fixture
def agents():
    started: list[Agent] = []
    yield started
    for agent in started:
        try:
            agent.stop()
        except Exception:
            pass


def make_things(srv, group: str, names: list[str]) -> None:
    client = aws.iot(srv)
    for name in names:
        client.create_thing(thingName=name)
        client.add_thing_to_thing_group(thingGroupName=group, thingName=name)


def test_fleet_configuration_across_fifty_devices(drover, agents):
    prefix = uid("dev").replace("-", "_")
    group = uid("fleet")
    template = uid("sensor-config")
    deployment = uid("sensors")
    iot = aws.iot(drover)
    iot.create_thing_group(thingGroupName=group)
    names = [f"{prefix}_{i:02d}" for i in range(50)]
    make_things(drover, group, names)
    online, offline = names[:40], names[40:]

    assert ok(drover, "POST", f"/config/templates/{template}", {"document": V1, "comment": "initial"})["version"] == 1

    # 1. Deployed to the group of 50 while 10 devices are offline.
    agents.extend(Agent(drover.mqtt_port, name).start() for name in online)
    answer = ok(drover, "POST", f"/config/deployments/{deployment}",
                {"templateName": template, "targetType": "THING_GROUP", "targetName": group})
    assert answer["revision"] == 1 and answer["templateVersion"] == 1 and answer["shadowName"] == "config"

    # 2. The online devices apply and report it; the offline ones are pending until they connect.
    assert wait_until(lambda: status(drover, deployment)["inSync"] == 40, 20), status(drover, deployment)
    pending = status(drover, deployment, "PENDING")
    assert (pending["members"], pending["inSync"], pending["pending"], pending["drifted"]) == (50, 40, 10, 0)
    assert sorted(t["thingName"] for t in pending["things"]) == offline
    assert {t["reason"] for t in pending["things"]} == {"NOT_REPORTED"}
    assert all(agent.running == V1 for agent in agents)
    late = [Agent(drover.mqtt_port, name).start() for name in offline]
    agents.extend(late)
    assert wait_until(lambda: status(drover, deployment)["inSync"] == 50, 20), status(drover, deployment, "PENDING")
    assert all(agent.running == V1 for agent in late)

    # A new version, deployed: every device runs it (and the keys V2 dropped are gone).
    assert ok(drover, "POST", f"/config/templates/{template}/versions", {"document": V2, "comment": "slower, debug"})["version"] == 2
    assert ok(drover, "PATCH", f"/config/deployments/{deployment}", {"comment": "to v2"})["templateVersion"] == 2
    assert wait_until(lambda: status(drover, deployment)["inSync"] == 50 and all(a.running == V2 for a in agents), 20), \
        status(drover, deployment, "PENDING")

    # 3. One device drifts (changed by hand), and another's desired state is changed behind the
    #    deployment's back; the status shows both, with the keys.
    drifter, overridden = agents[7], agents[8]
    drifter.pin({"sampleRate": 99})
    aws.iot_data(drover).update_thing_shadow(thingName=overridden.thing, shadowName="config",
                                             payload=json.dumps({"state": {"desired": {"debug": "off"}}}))
    assert wait_until(lambda: status(drover, deployment)["drifted"] == 2, 20), status(drover, deployment)
    drifted = status(drover, deployment)
    assert (drifted["inSync"], drifted["pending"], drifted["drifted"]) == (48, 0, 2)
    by_thing = {t["thingName"]: t for t in drifted["things"]}
    assert by_thing[drifter.thing] == {"thingName": drifter.thing, "state": "DRIFTED", "reason": "REPORTED_DIFFERS",
                                      "keys": ["sampleRate"]}
    assert by_thing[overridden.thing]["reason"] == "DESIRED_CHANGED" and by_thing[overridden.thing]["keys"] == ["debug"]

    # Remote reset puts the overridden device back on the template.
    reset = ok(drover, "POST", f"/config/things/{overridden.thing}/reset", {})
    assert reset["source"] == "TEMPLATE" and reset["deploymentName"] == deployment and reset["templateVersion"] == 2
    assert wait_until(lambda: status(drover, deployment)["drifted"] == 1 and overridden.running == V2, 20), status(drover, deployment)

    # 4. Rolled back: every device, the drifted one included, gets the older configuration, and
    #    the keys only V2 had are removed from desired.
    rolled = ok(drover, "POST", f"/config/deployments/{deployment}/rollback", {"comment": "v2 drains batteries"})
    assert (rolled["templateVersion"], rolled["revision"]) == (1, 3)
    assert [h["action"] for h in rolled["history"]] == ["DEPLOY", "UPDATE", "ROLLBACK"]
    assert wait_until(lambda: status(drover, deployment)["inSync"] == 50 and all(a.running == V1 for a in agents), 30), \
        status(drover, deployment, "PENDING")
    shadow = json.loads(aws.iot_data(drover).get_thing_shadow(thingName=drifter.thing, shadowName="config")["payload"].read())
    assert shadow["state"]["desired"] == V1 and "delta" not in shadow["state"]

    # 5. A thing that joins the group later gets the current configuration, before it even connects.
    newcomer = f"{prefix}_new"
    make_things(drover, group, [newcomer])
    data = aws.iot_data(drover)

    def newcomer_desired():
        try:
            return json.loads(data.get_thing_shadow(thingName=newcomer, shadowName="config")["payload"].read())["state"]["desired"]
        except data.exceptions.ResourceNotFoundException:
            return None
    assert wait_until(lambda: newcomer_desired() == V1, 10)
    agents.append(Agent(drover.mqtt_port, newcomer).start())
    assert wait_until(lambda: status(drover, deployment)["inSync"] == 51, 20), status(drover, deployment, "PENDING")
    assert agents[-1].running == V1

    described = ok(drover, "GET", f"/config/deployments/{deployment}")
    assert described["rollout"] == {"members": 51, "applied": 51, "failed": 0, "status": "COMPLETED"}


def test_thing_type_deployment_factory_default_and_cli(drover):
    iot = aws.iot(drover)
    data = aws.iot_data(drover)
    kind = uid("meter").replace("-", "_")
    iot.create_thing_type(thingTypeName=kind)
    things = [f"{kind}_{i}" for i in range(3)]
    for thing in things:
        iot.create_thing(thingName=thing, thingTypeName=kind)
    other = uid("plain").replace("-", "_")
    iot.create_thing(thingName=other)
    workdir = drover.workdir
    (workdir / "meter.json").write_text(json.dumps({"interval": 60, "unit": "kWh"}))
    (workdir / "factory.json").write_text(json.dumps({"interval": 900}))
    template, deployment = uid("meter-config"), uid("meters")

    def cli(*args: str) -> str:
        run = subprocess.run([str(drover_bin()), "config", *args, "--endpoint", f"http://127.0.0.1:{drover.http_port}", "--data-dir",
                              str(drover.data_dir)], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert json.loads(cli("template", "create", template, "--file", str(workdir / "meter.json"), "--comment", "first"))["version"] == 1
    deployed = json.loads(cli("deploy", deployment, "--template", template, "--thing-type", kind))
    assert deployed["targetType"] == "THING_TYPE" and deployed["targetName"] == kind

    def desired(thing):
        try:
            return json.loads(data.get_thing_shadow(thingName=thing, shadowName="config")["payload"].read())["state"].get("desired")
        except data.exceptions.ResourceNotFoundException:
            return None
    assert wait_until(lambda: all(desired(t) == {"interval": 60, "unit": "kWh"} for t in things), 10)
    assert desired(other) is None
    # A thing created with that type later gets it too.
    iot.create_thing(thingName=f"{kind}_late", thingTypeName=kind)
    assert wait_until(lambda: desired(f"{kind}_late") == {"interval": 60, "unit": "kWh"}, 10)

    text = cli("status", deployment, "--state", "PENDING")
    assert "members 4: in sync 0, pending 4, drifted 0" in text, text
    assert json.loads(cli("status", deployment, "--json"))["drifted"] == 0

    # Factory reset: desired becomes exactly the thing type's factory default.
    data.update_thing_shadow(thingName=things[0], shadowName="config", payload=json.dumps({"state": {"desired": {"mine": 1}}}))
    assert json.loads(cli("factory-default", "set", kind, "--file", str(workdir / "factory.json")))["document"] == {"interval": 900}
    reset = json.loads(cli("reset", things[0], "--factory-default"))
    assert reset["source"] == "FACTORY_DEFAULT" and reset["shadowVersion"] >= 3
    assert desired(things[0]) == {"interval": 900}
    # ...and back to the template: the factory keys it does not have go.
    cli("reset", things[0])
    assert desired(things[0]) == {"interval": 60, "unit": "kWh"}

    versions = json.loads(cli("template", "versions", template))["versions"]
    assert [(v["version"], v["comment"]) for v in versions] == [(1, "first")]
    assert versions[0]["author"] == aws.admin_credentials(drover)[0]
    assert "deleted deployment" in cli("delete", deployment)
    assert "deleted template" in cli("template", "delete", template)


def test_configuration_errors_are_clear(drover):
    iot = aws.iot(drover)
    group, thing = uid("grp"), uid("lonely").replace("-", "_")
    iot.create_thing_group(thingGroupName=group)
    iot.create_thing(thingName=thing)
    template = uid("tpl")

    def refused(method, path, body, status, error, words):
        got = call(drover, method, path, body)
        assert got[0] == status and got[1] == error, got
        assert words in got[2]["message"], got

    refused("POST", f"/config/templates/{template}", {"document": [1, 2]}, 400, "InvalidRequestException", "must be a JSON object")
    refused("POST", f"/config/templates/{template}", {"document": {"a": None}}, 400, "InvalidRequestException", "sets a to null")
    refused("POST", f"/config/templates/{template}", {}, 400, "InvalidRequestException", "document is missing")
    refused("POST", f"/config/templates/bad%20name", {"document": {"a": 1}}, 400, "InvalidRequestException", "templateName")
    deep = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}}
    refused("POST", f"/config/templates/{template}", {"document": deep}, 400, "InvalidRequestException", "levels deep")
    refused("POST", f"/config/templates/{template}", {"document": {"big": "x" * 70000}}, 400, "InvalidRequestException", "a shadow allows")
    status_, _, _ = aws.send("POST", aws.endpoint(drover) + f"/config/templates/{template}", b'{"document": {"a": 1}}',
                             {"Content-Type": "application/json"})
    assert status_ == 403  # unsigned
    ok(drover, "POST", f"/config/templates/{template}", {"document": {"a": 1}})
    refused("POST", f"/config/templates/{template}", {"document": {"a": 1}}, 409, "ResourceAlreadyExistsException", "already exists")
    refused("POST", "/config/templates/nope/versions", {"document": {"a": 1}}, 404, "ResourceNotFoundException", "template nope")
    refused("GET", f"/config/templates/{template}/versions/7", None, 404, "ResourceNotFoundException", "no version 7")
    refused("GET", f"/config/templates/{template}?version=x", None, 400, "InvalidRequestException", "version must be a number")

    base = {"templateName": template, "targetType": "THING_GROUP", "targetName": group}
    refused("POST", "/config/deployments/d-nope", {**base, "templateName": "nope"}, 404, "ResourceNotFoundException", "template nope")
    refused("POST", "/config/deployments/d-nogroup", {**base, "targetName": "nope"}, 404, "ResourceNotFoundException", "thing group nope")
    refused("POST", "/config/deployments/d-badtype", {**base, "targetType": "FLEET"}, 400, "InvalidRequestException", "THING_GROUP or THING_TYPE")
    refused("POST", "/config/deployments/d-shadow", {**base, "shadowName": "no/slash"}, 400, "InvalidRequestException", "shadowName")
    refused("POST", "/config/deployments/d-version", {**base, "templateVersion": 0}, 400, "InvalidRequestException", "positive whole number")
    deployment = uid("dep")
    ok(drover, "POST", f"/config/deployments/{deployment}", base)
    refused("POST", f"/config/deployments/{deployment}", base, 409, "ResourceAlreadyExistsException", "already exists")
    refused("POST", f"/config/deployments/{uid('dep')}", base, 409, "ResourceAlreadyExistsException", f"deployment {deployment} already configures")
    refused("POST", f"/config/deployments/{deployment}/rollback", {}, 400, "InvalidRequestException", "no version earlier than 1")
    refused("PATCH", f"/config/deployments/{deployment}", {}, 400, "InvalidRequestException", "already deploys version 1")
    ok(drover, "POST", f"/config/templates/{template}/versions", {"document": {"a": 2}})
    ok(drover, "PATCH", f"/config/deployments/{deployment}", {})
    refused("POST", f"/config/deployments/{deployment}/rollback", {"templateVersion": 2}, 400, "InvalidRequestException", "earlier version")
    refused("DELETE", f"/config/templates/{template}", None, 409, "DeleteConflictException", f"deployed by {deployment}")
    refused("GET", "/config/deployments/nope/status", None, 404, "ResourceNotFoundException", "deployment nope")
    refused("GET", f"/config/deployments/{deployment}/status?state=LOST", None, 400, "InvalidRequestException", "state must be")

    refused("POST", "/config/things/nope/reset", {}, 404, "ResourceNotFoundException", "thing nope")
    refused("POST", f"/config/things/{thing}/reset", {}, 404, "ResourceNotFoundException", "no deployment configures")
    refused("POST", f"/config/things/{thing}/reset", {"source": "FACTORY_DEFAULT"}, 400, "InvalidRequestException", "no thing type")
    refused("POST", f"/config/things/{thing}/reset", {"source": "MAGIC"}, 400, "InvalidRequestException", "TEMPLATE or FACTORY_DEFAULT")
    refused("PUT", "/config/thing-types/nope/factory-default", {"document": {"a": 1}}, 404, "ResourceNotFoundException", "thing type nope")
    refused("GET", "/config/thing-types/nope/factory-default", None, 404, "ResourceNotFoundException", "no factory-default")

    # Refusals are audited, like the registry's.
    entries = ok(drover, "GET", "/drover/audit?resource=configdeployment%2Fd-nogroup")["entries"]
    assert [(e["operation"], e["outcome"]) for e in entries] == [("CreateConfigDeployment", "ResourceNotFoundException")]
    # Nothing was half-made by the refusals.
    listed = [d["deploymentName"] for d in ok(drover, "GET", f"/config/deployments?templateName={template}")["deployments"]]
    assert listed == [deployment]


def test_a_refused_write_is_reported_and_retried(drover_factory, agents):
    """A member whose shadow cannot take the configuration (too large) shows APPLY_FAILED with
    the shadow's reason, and gets it once its shadow has room."""
    srv = drover_factory(DROVER_SHADOWS_MAX_DOCUMENT_SIZE="1024", DROVER_CONFIG_RETRY_INTERVAL="1")
    iot, data = aws.iot(srv), aws.iot_data(srv)
    group, thing = uid("grp"), uid("full").replace("-", "_")
    iot.create_thing_group(thingGroupName=group)
    make_things(srv, group, [thing])
    data.update_thing_shadow(thingName=thing, shadowName="config", payload=json.dumps({"state": {"reported": {"log": "x" * 900}}}))
    ok(srv, "POST", "/config/templates/big", {"document": {"blob": "y" * 300}})
    ok(srv, "POST", "/config/deployments/big", {"templateName": "big", "targetType": "THING_GROUP", "targetName": group})
    assert wait_until(lambda: status(srv, "big", "PENDING")["things"][:1] and
                      status(srv, "big", "PENDING")["things"][0]["reason"].startswith("APPLY_FAILED: 413"), 10), \
        status(srv, "big", "PENDING")
    assert ok(srv, "GET", "/config/deployments/big")["rollout"]["failed"] == 1
    data.update_thing_shadow(thingName=thing, shadowName="config", payload=json.dumps({"state": {"reported": {"log": None}}}))
    assert wait_until(lambda: ok(srv, "GET", "/config/deployments/big")["rollout"]["status"] == "COMPLETED", 10)


def test_configuration_survives_kill9(tmp_path_factory):
    from test_durability import SQLITE, DurableServer
    srv = DurableServer(tmp_path_factory.mktemp("config"), dict(SQLITE))
    try:
        srv.start()
        iot = aws.iot(srv)
        iot.create_thing_group(thingGroupName="g")
        make_things(srv, "g", ["t1"])
        ok(srv, "POST", "/config/templates/tpl", {"document": {"rate": 1}, "comment": "one"})
        ok(srv, "POST", "/config/templates/tpl/versions", {"document": {"rate": 2}, "comment": "two"})
        ok(srv, "POST", "/config/deployments/dep", {"templateName": "tpl", "targetType": "THING_GROUP", "targetName": "g"})
        assert wait_until(lambda: ok(srv, "GET", "/config/deployments/dep")["rollout"]["status"] == "COMPLETED", 10)
        srv.kill9()
        srv.start()
        versions = ok(srv, "GET", "/config/templates/tpl/versions")["versions"]
        assert [(v["version"], v["comment"]) for v in versions] == [(2, "two"), (1, "one")]
        described = ok(srv, "GET", "/config/deployments/dep")
        assert described["templateVersion"] == 2 and described["rollout"]["applied"] == 1
        # A thing that joins after the restart still gets the configuration.
        make_things(srv, "g", ["t2"])
        assert wait_until(lambda: ok(srv, "GET", "/config/deployments/dep")["rollout"] == {
            "members": 2, "applied": 2, "failed": 0, "status": "COMPLETED"}, 10)
    finally:
        srv.stop()

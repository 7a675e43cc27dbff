"""The storage spine: one control-plane database (`drover.sqlite`), the upgrade of a data
directory of the older layout, a lost database noticed, and `kill -9` during a burst of
writes.

The legacy data directory in fixtures/ was made by `drover serve` at 771e6ff with
fixtures/make_legacy_datadir.py. Its control-plane layout (registry.sqlite, config.sqlite,
shadows.sqlite, broker.sqlite, each with a `.created` marker) is that of 5612e4b: the stores
did not change in between.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import tarfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

import aws
import conftest as e2e
from clients import wait_until
from test_durability import SQLITE, DurableServer

# They look at drover.sqlite itself; the SQLite pass runs them.
pytestmark = pytest.mark.skipif(e2e.BACKEND == "postgres", reason="tests of drover.sqlite's own files")

FIXTURE = Path(__file__).parent / "fixtures" / "datadir-771e6ff.tar.gz"


def legacy_server(tmp_path) -> DurableServer:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return DurableServer(tmp_path, dict(SQLITE))


def receive(port: int, client_id: str, topic: str, clean: bool, count: int = 1, timeout: float = 10) -> list[bytes]:
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(e2e.HOST, port)
    client.loop_start()
    try:
        if topic:
            client.subscribe(topic, qos=1)
        wait_until(lambda: len(got) >= count, timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def test_a_data_directory_of_the_older_layout_is_upgraded_in_place(tmp_path):
    srv = legacy_server(tmp_path)
    facts = json.loads((srv.data_dir / "fixture.json").read_text())
    try:
        srv.start()
        files = {p.name for p in srv.data_dir.iterdir()}
        assert "drover.sqlite" in files and "broker.sqlite" in files
        assert {"registry.sqlite.migrated", "config.sqlite.migrated", "shadows.sqlite.migrated"} <= files
        assert not {"registry.sqlite", "config.sqlite", "shadows.sqlite"} & files
        assert not [f for f in files if f.endswith(".created")], files
        assert (srv.data_dir / "drover.sqlite").stat().st_mode & 0o777 == 0o600

        # The admin key of the old directory still signs.
        iot = aws.iot(srv, key=tuple(facts["admin"]))
        things = {t["thingName"]: t for t in iot.list_things()["things"]}
        assert sorted(things) == [f"dev-{i}" for i in range(5)]
        assert things["dev-3"]["thingTypeName"] == "sensor"
        assert things["dev-3"]["attributes"] == {"model": "m1", "index": "3"}
        assert iot.describe_thing(thingName="dev-0")["billingGroupName"] == "lab"
        assert sorted(iot.list_things_in_thing_group(thingGroupName="floor1")["things"]) == ["dev-0", "dev-1", "dev-2"]
        assert sorted(iot.list_things_in_thing_group(thingGroupName="fleet", recursive=True)["things"]) == \
            [f"dev-{i}" for i in range(5)]
        assert iot.list_thing_groups_for_thing(thingName="dev-4")["thingGroups"][0]["groupName"] == "fleet"
        arn = iot.describe_thing(thingName="dev-0")["thingArn"]
        assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "site", "Value": "berlin"}]
        # Policies, their versions and their targets (the links were one record per policy before).
        assert [v["versionId"] for v in iot.list_policy_versions(policyName="device")["policyVersions"]] == ["2", "1"]
        for name, certificate in facts["certificates"].items():
            principals = iot.list_thing_principals(thingName=name)["principals"]
            assert len(principals) == 1 and principals[0].endswith(certificate)
            assert [p["policyName"] for p in iot.list_attached_policies(target=principals[0])["policies"]] == ["device"]
        group_arn = iot.describe_thing_group(thingGroupName="floor1")["thingGroupArn"]
        assert [p["policyName"] for p in iot.list_attached_policies(target=group_arn)["policies"]] == ["group-policy"]
        assert len(iot.list_targets_for_policy(policyName="device")["targets"]) == 5
        revoked = iot.describe_certificate(certificateId=facts["certificates"]["dev-4"])["certificateDescription"]
        assert revoked["status"] == "REVOKED"
        # Each certificate's PEM (kept in its certificate record before, in a record of its own
        # now) is the certificate its id names.
        for certificate in facts["certificates"].values():
            pem = iot.describe_certificate(certificateId=certificate)["certificateDescription"]["certificatePem"]
            assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() == certificate

        # Shadows, classic and named.
        data = aws.iot_data(srv, key=tuple(facts["admin"]))
        shadow = json.loads(data.get_thing_shadow(thingName="dev-0")["payload"].read())
        assert shadow["state"] == {"desired": {"led": "on"}, "reported": {"led": "off"}, "delta": {"led": "on"}}
        named = json.loads(data.get_thing_shadow(thingName="dev-1", shadowName="settings")["payload"].read())
        assert named["state"]["reported"] == {"rate": 5}

        # Fleet configuration: the deployment and what each member holds.
        status, _, deployment = aws.signed(srv, "GET", "/config/deployments/dep", key=tuple(facts["admin"]))
        assert status == 200 and deployment["rollout"] == {"members": 3, "applied": 3, "failed": 0, "status": "COMPLETED"}

        # The old audit log is there, and the upgrade of the link records is in it.
        status, _, log = aws.signed(srv, "GET", "/drover/audit?resource=dev-0", key=tuple(facts["admin"]))
        assert status == 200 and "CreateThing" in [e["operation"] for e in log["entries"]]
        status, _, log = aws.signed(srv, "GET", "/drover/audit?operation=UpgradeRecords", key=tuple(facts["admin"]))
        assert len(log["entries"]) == 1

        # The broker's own file was left as it was: the retained and the queued message.
        assert receive(srv.mqtt_port, "reader", "legacy/retained", clean=True) == [b"kept"]
        assert receive(srv.mqtt_port, "keeper", "", clean=False) == [b"queued"]

        # Restarted: nothing is imported twice, and a new write lands in drover.sqlite.
        iot.create_thing(thingName="after-upgrade")
        srv.stop()
        srv.start()
        iot = aws.iot(srv, key=tuple(facts["admin"]))
        assert "after-upgrade" in [t["thingName"] for t in iot.list_things()["things"]]
        status, _, log = aws.signed(srv, "GET", "/drover/audit?operation=UpgradeRecords", key=tuple(facts["admin"]))
        assert len(log["entries"]) == 1
    finally:
        srv.stop()


def test_a_lost_control_plane_database_stops_the_start_with_a_message(tmp_path):
    srv = DurableServer(tmp_path, dict(SQLITE))
    try:
        srv.start()
        aws.iot(srv).create_thing(thingName="kept")
        srv.stop()
        for suffix in ("", "-wal", "-shm"):
            (srv.data_dir / f"drover.sqlite{suffix}").unlink(missing_ok=True)
        binary = e2e.drover_bin()
        result = subprocess.run([str(binary), "serve", "--data-dir", str(srv.data_dir), "--mqtt-port", "0",
                                 "--http-port", "0", "--https-port", "0", "--mqtts-port", "0"],
                                capture_output=True, text=True, timeout=30,
                                env={**{k: v for k, v in os.environ.items() if not k.startswith("DROVER_")},
                                     "DROVER_CREDENTIALS_PORT": "0"})
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "drover.sqlite" in output and "missing" in output, output
        assert not (srv.data_dir / "drover.sqlite").exists()
    finally:
        srv.stop()


def test_kill9_during_a_burst_of_creates_loses_nothing_acknowledged(tmp_path):
    srv = DurableServer(tmp_path, dict(SQLITE))
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int):
        client = aws.iot(srv)
        n = 0
        while not stop.is_set():
            name = f"burst-{worker}-{n}"
            n += 1
            try:
                client.create_thing(thingName=name)
            except Exception:  # the server went away mid-request: not acknowledged
                return
            with lock:
                acknowledged.append(name)

    try:
        srv.start()
        aws.iot(srv)  # the admin key, read before the burst
        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: len(acknowledged) >= 60, 30), len(acknowledged)
        srv.kill9()
        stop.set()
        for thread in threads:
            thread.join(30)
        srv.start()
        names = aws.all_thing_names(srv)
        missing = [n for n in acknowledged if n not in names]
        assert not missing, f"{len(missing)} acknowledged creates lost: {missing[:5]}"
        # Each is there once, with its audit entry (they were one transaction).
        for name in acknowledged[:20]:
            status, _, log = aws.signed(srv, "GET", f"/drover/audit?resource={name}")
            assert [e["operation"] for e in log["entries"]] == ["CreateThing"], name
    finally:
        stop.set()
        srv.stop()

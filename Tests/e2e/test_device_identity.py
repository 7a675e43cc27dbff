"""Device identity end to end: the seeds' boto3 flow (thing type, thing, keys and certificate,
a policy with ${iot:Connection.Thing.ThingName}, attachments), then devices over mutual TLS with
paho-mqtt and the AWS IoT Device SDK v2, policy enforcement, revocation, and a CSR whose key
never leaves the device."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import aws
from clients import Paho, uid, wait_until

pytestmark = pytest.mark.skipif(os.environ.get("DROVER_E2E_MOSQUITTO") == "1", reason="Drover-only")

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def tls_server(drover_module_factory):
    return drover_module_factory(DROVER_E2E_TLS="1")


def policy_document(prefix: str = "things") -> str:
    name = "${iot:Connection.Thing.ThingName}"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{name}"},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"arn:aws:iot:*:*:topic/{prefix}/{name}/*"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"arn:aws:iot:*:*:topicfilter/{prefix}/{name}/*"},
        ],
    })


class Device:
    """Files of a provisioned device: its certificate and key, and the server's CA."""

    def __init__(self, srv, tmp: Path, thing: str, cert_pem: str, key_pem: str, cert_arn: str, cert_id: str):
        self.thing, self.cert_arn, self.cert_id = thing, cert_arn, cert_id
        self.dir = tmp
        self.cert = tmp / f"{thing}.pem"
        self.key = tmp / f"{thing}.key"
        self.cert.write_text(cert_pem)
        self.key.write_text(key_pem)
        os.chmod(self.key, 0o600)
        self.ca = Path(srv.data_dir) / "ca.pem"


def provision(srv, tmp: Path, policy: str | None = None, attach: bool = True) -> Device:
    """The seeds' flow with boto3, and only endpoint_url added."""
    iot = aws.iot(srv)
    thing = uid("dev").replace("-", "_")
    type_name = "sensor_" + thing[-6:]
    iot.create_thing_type(thingTypeName=type_name)
    iot.create_thing(thingName=thing, thingTypeName=type_name, attributePayload={"attributes": {"site": "lab"}})
    created = iot.create_keys_and_certificate(setAsActive=True)
    if policy:
        iot.attach_policy(policyName=policy, target=created["certificateArn"])
    if attach:
        iot.attach_thing_principal(thingName=thing, principal=created["certificateArn"])
    return Device(srv, tmp, thing, created["certificatePem"], created["keyPair"]["PrivateKey"],
                  created["certificateArn"], created["certificateId"])


@pytest.fixture(scope="module")
def device_policy(tls_server):
    name = "device_policy_" + uid("p")[-6:]
    aws.iot(tls_server).create_policy(policyName=name, policyDocument=policy_document())
    return name


class TlsClient:
    """paho-mqtt (MQTT 5) over mutual TLS, recording what it gets."""

    def __init__(self, srv, device: Device, client_id: str | None = None, version=mqtt.MQTTv5):
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or device.thing, protocol=version)
        self.c.tls_set(ca_certs=str(device.ca), certfile=str(device.cert), keyfile=str(device.key),
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.port = srv.mqtts_port
        self.connack = None
        self.connected = threading.Event()
        self.done = threading.Event()
        self.disconnected = threading.Event()
        self.disconnected_at: float | None = None
        self.messages: list = []
        self.subacks: dict = {}
        self.pubacks: dict = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda c, u, m: self.messages.append(m)
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.__setitem__(mid, [int(x.value) for x in codes])
        self.c.on_publish = lambda c, u, mid, code, props: self.pubacks.__setitem__(mid, int(code.value))

    def _on_connect(self, c, u, flags, reason, props):
        self.connack = int(reason.value)
        if not reason.is_failure:
            self.connected.set()
        self.done.set()

    def _on_disconnect(self, c, u, flags, reason, props):
        self.disconnected_at = time.monotonic()
        self.disconnected.set()
        self.done.set()

    def connect(self, timeout: float = 10) -> int | None:
        try:
            self.c.connect(HOST, self.port, keepalive=30)
        except (ssl.SSLError, OSError) as e:
            return f"tls: {e}"  # type: ignore[return-value]
        self.c.loop_start()
        self.done.wait(timeout)
        return self.connack

    def subscribe(self, topic: str) -> list[int]:
        _, mid = self.c.subscribe(topic, qos=1)
        assert wait_until(lambda: mid in self.subacks, 5), "no SUBACK"
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.c.publish(topic, payload, qos=1)
        assert wait_until(lambda: info.mid in self.pubacks, 5), "no PUBACK"
        return self.pubacks[info.mid]

    def stop(self):
        self.c.loop_stop()
        try:
            self.c.disconnect()
        except Exception:
            pass


def test_ca_and_server_identity(tls_server):
    ca = Path(tls_server.data_dir) / "ca.pem"
    key = Path(tls_server.data_dir) / "ca.key"
    assert ca.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    text = subprocess.run(["openssl", "x509", "-in", str(ca), "-noout", "-text"], capture_output=True, text=True).stdout
    assert "CA:TRUE" in text and "prime256v1" in text
    # The server's certificate chains to the CA and names 127.0.0.1 and localhost; TLS 1.1 is refused.
    out = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{tls_server.mqtts_port}", "-CAfile", str(ca),
                          "-verify_return_error", "-verify_ip", HOST, "-brief"],
                         input="", capture_output=True, text=True, timeout=10)
    assert "Verification: OK" in out.stderr or "Verify return code: 0" in out.stdout + out.stderr, out.stderr
    old = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{tls_server.mqtts_port}", "-tls1_1", "-brief"],
                         input="", capture_output=True, text=True, timeout=10)
    assert "Protocol version: TLSv1.1" not in old.stderr
    cas = aws.iot(tls_server).list_ca_certificates()["certificates"]
    assert any(c["status"] == "ACTIVE" for c in cas), "Drover's own CA is not registered"


def test_seed_flow_paho_policy_and_revocation(tls_server, device_policy, tmp_path, clients):
    dev = provision(tls_server, tmp_path, policy=device_policy)
    other = provision(tls_server, tmp_path, policy=device_policy)

    # An observer on the loopback listener sees everything that is delivered.
    observer = Paho(tls_server.mqtt_port)
    clients.append(observer)
    observer.connect()
    observer.subscribe("things/#", qos=1)

    client = TlsClient(tls_server, dev)
    try:
        assert client.connect() == 0, f"CONNACK {client.connack}"
        assert client.subscribe(f"things/{dev.thing}/cmd") == [1]
        assert client.subscribe(f"things/{other.thing}/cmd") == [0x87], "a forbidden filter was granted"
        assert client.publish(f"things/{dev.thing}/telemetry", b"mine") == 0
        assert client.publish(f"things/{other.thing}/telemetry", b"not mine") == 0x87
        observer.wait_messages(1, 3)
        time.sleep(0.3)
        topics = [m.topic for m in observer.received()]
        assert f"things/{dev.thing}/telemetry" in topics
        assert f"things/{other.thing}/telemetry" not in topics, "a refused publish was delivered"

        # Revoking the certificate drops the live connection within a second ...
        t0 = time.monotonic()
        aws.iot(tls_server).update_certificate(certificateId=dev.cert_id, newStatus="REVOKED")
        assert client.disconnected.wait(2), "the connection survived the revocation"
        assert client.disconnected_at - t0 < 1.0, f"dropped after {client.disconnected_at - t0:.2f} s"
    finally:
        client.stop()
    # ... and it cannot come back.
    again = TlsClient(tls_server, dev)
    try:
        result = again.connect(timeout=3)
        assert result != 0, "a revoked certificate connected again"
    finally:
        again.stop()


def test_client_id_must_match_policy(tls_server, device_policy, tmp_path):
    dev = provision(tls_server, tmp_path, policy=device_policy)
    client = TlsClient(tls_server, dev, client_id="someone_else")
    try:
        assert client.connect() == 0x87, "iot:Connect on client/someone_else should be refused"
    finally:
        client.stop()


def test_no_policy_no_connect_and_unknown_certificate(tls_server, tmp_path):
    dev = provision(tls_server, tmp_path, policy=None)
    client = TlsClient(tls_server, dev)
    try:
        assert client.connect() == 0x87
    finally:
        client.stop()
    # A certificate from another CA, never registered: the handshake fails.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / "rogue.key"), "-out", str(tmp_path / "rogue.pem"), "-days", "1",
                    "-subj", "/CN=rogue"], check=True, capture_output=True)
    rogue = Device(tls_server, tmp_path, "rogue_device", (tmp_path / "rogue.pem").read_text(),
                   (tmp_path / "rogue.key").read_text(), "", "")
    client = TlsClient(tls_server, rogue)
    try:
        assert client.connect(timeout=3) != 0
    finally:
        client.stop()


def test_inactive_certificate_and_detached_thing(tls_server, device_policy, tmp_path):
    dev = provision(tls_server, tmp_path, policy=device_policy)
    iot = aws.iot(tls_server)
    client = TlsClient(tls_server, dev)
    try:
        assert client.connect() == 0
        iot.detach_thing_principal(thingName=dev.thing, principal=dev.cert_arn)
        assert client.disconnected.wait(2), "detaching the thing left the connection open"
    finally:
        client.stop()
    iot.attach_thing_principal(thingName=dev.thing, principal=dev.cert_arn)
    iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
    client = TlsClient(tls_server, dev)
    try:
        assert client.connect(timeout=3) != 0, "an INACTIVE certificate connected"
    finally:
        client.stop()
    with pytest.raises(iot.exceptions.CertificateStateException):
        iot.delete_certificate(certificateId=provision(tls_server, tmp_path).cert_id)


def test_csr_key_never_leaves_the_device(tls_server, device_policy, tmp_path):
    iot = aws.iot(tls_server)
    key, csr = tmp_path / "device.key", tmp_path / "device.csr"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
    subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=csr-device", "-out", str(csr)], check=True)
    created = iot.create_certificate_from_csr(certificateSigningRequest=csr.read_text(), setAsActive=True)
    assert "keyPair" not in created
    thing = uid("csr").replace("-", "_")
    iot.create_thing(thingName=thing)
    iot.attach_thing_principal(thingName=thing, principal=created["certificateArn"])
    iot.attach_policy(policyName=device_policy, target=created["certificateArn"])
    dev = Device(tls_server, tmp_path, thing, created["certificatePem"], key.read_text(), created["certificateArn"],
                 created["certificateId"])
    client = TlsClient(tls_server, dev)
    try:
        assert client.connect() == 0
        # 0x10: accepted, and no one subscribes to it.
        assert client.publish(f"things/{thing}/hello", b"from a CSR") in (0, 0x10)
    finally:
        client.stop()
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_certificate_from_csr(certificateSigningRequest="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


def test_aws_iot_device_sdk_v2(tls_server, device_policy, tmp_path):
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder

    dev = provision(tls_server, tmp_path, policy=device_policy)
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=tls_server.mqtts_port, cert_filepath=str(dev.cert), pri_key_filepath=str(dev.key),
        ca_filepath=str(dev.ca), client_id=dev.thing, clean_session=True, keep_alive_secs=30)
    connection.connect().result(10)
    try:
        got: list = []
        event = threading.Event()

        def on_message(topic, payload, **kwargs):
            got.append((topic, payload))
            event.set()

        topic = f"things/{dev.thing}/sdk"
        future, _ = connection.subscribe(topic=topic, qos=crt_mqtt.QoS.AT_LEAST_ONCE, callback=on_message)
        assert future.result(10)["qos"] == crt_mqtt.QoS.AT_LEAST_ONCE
        future, _ = connection.publish(topic=topic, payload=b"hello from awsiotsdk", qos=crt_mqtt.QoS.AT_LEAST_ONCE)
        future.result(10)
        assert event.wait(5) and got == [(topic, b"hello from awsiotsdk")]
        # A filter the policy does not allow: the SDK reports the SUBACK failure (0x80).
        future, _ = connection.subscribe(topic=f"things/not_{dev.thing}/x", qos=crt_mqtt.QoS.AT_LEAST_ONCE, callback=on_message)
        with pytest.raises(crt_mqtt.SubscribeError):
            future.result(10)
    finally:
        connection.disconnect().result(10)


def test_policy_versions_and_test_authorization(tls_server, device_policy, tmp_path):
    iot = aws.iot(tls_server)
    dev = provision(tls_server, tmp_path, policy=device_policy)
    allowed = iot.test_authorization(principal=dev.cert_arn, clientId=dev.thing, authInfos=[
        {"actionType": "PUBLISH", "resources": [f"arn:aws:iot:us-east-1:123456789012:topic/things/{dev.thing}/x"]},
        {"actionType": "PUBLISH", "resources": ["arn:aws:iot:us-east-1:123456789012:topic/things/other/x"]},
    ])["authResults"]
    assert [r["authDecision"] for r in allowed] == ["ALLOWED", "IMPLICIT_DENY"]
    assert allowed[0]["allowed"]["policies"][0]["policyName"] == device_policy

    name = "versions_" + uid("v")[-6:]
    iot.create_policy(policyName=name, policyDocument=policy_document("a"))
    for i in range(4):
        iot.create_policy_version(policyName=name, policyDocument=policy_document(f"v{i}"), setAsDefault=(i == 3))
    with pytest.raises(iot.exceptions.VersionsLimitExceededException):
        iot.create_policy_version(policyName=name, policyDocument=policy_document("six"))
    versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    assert len(versions) == 5 and [v["versionId"] for v in versions if v["isDefaultVersion"]] == ["5"]
    assert "v3/" in iot.get_policy(policyName=name)["policyDocument"]
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_policy_version(policyName=name, policyVersionId="5")
    iot.set_default_policy_version(policyName=name, policyVersionId="1")
    assert "topic/a/" in iot.get_policy_version(policyName=name, policyVersionId="1")["policyDocument"]
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_policy(policyName=name)
    for v in ("2", "3", "4", "5"):
        iot.delete_policy_version(policyName=name, policyVersionId=v)
    iot.delete_policy(policyName=name)

    with pytest.raises(iot.exceptions.MalformedPolicyException) as e:
        iot.create_policy(policyName="broken_" + uid("b")[-6:], policyDocument='{"Version": "2012-10-17", "Statement": [}')
    assert "line 1, column" in e.value.response["Error"]["Message"]

    # Attachments, listings and effective policies.
    assert device_policy in [p["policyName"] for p in iot.list_attached_policies(target=dev.cert_arn)["policies"]]
    assert dev.cert_arn in iot.list_targets_for_policy(policyName=device_policy)["targets"]
    assert [p["policyName"] for p in iot.get_effective_policies(principal=dev.cert_arn)["effectivePolicies"]] == [device_policy]
    assert iot.list_thing_principals(thingName=dev.thing)["principals"] == [dev.cert_arn]
    assert iot.list_principal_things(principal=dev.cert_arn)["things"] == [dev.thing]


def test_certificate_rules(tls_server, device_policy, tmp_path):
    iot = aws.iot(tls_server)
    dev = provision(tls_server, tmp_path, policy=device_policy)
    described = iot.describe_certificate(certificateId=dev.cert_id)["certificateDescription"]
    assert described["status"] == "ACTIVE" and described["certificatePem"].startswith("-----BEGIN CERTIFICATE")
    assert dev.cert_id in [c["certificateId"] for c in iot.list_certificates(pageSize=250)["certificates"]]
    ca_id = described["caCertificateId"]
    assert dev.cert_id in [c["certificateId"] for c in iot.list_certificates_by_ca(caCertificateId=ca_id, pageSize=250)["certificates"]]
    # Deleting: refused while ACTIVE, then while attached; allowed after.
    with pytest.raises(iot.exceptions.CertificateStateException):
        iot.delete_certificate(certificateId=dev.cert_id)
    iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_certificate(certificateId=dev.cert_id)
    iot.detach_thing_principal(thingName=dev.thing, principal=dev.cert_arn)
    with pytest.raises(iot.exceptions.DeleteConflictException):
        iot.delete_certificate(certificateId=dev.cert_id)
    iot.delete_certificate(certificateId=dev.cert_id, forceDelete=True)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_certificate(certificateId=dev.cert_id)
    # A revoked certificate stays revoked.
    other = provision(tls_server, tmp_path)
    iot.update_certificate(certificateId=other.cert_id, newStatus="REVOKED")
    with pytest.raises(iot.exceptions.CertificateStateException):
        iot.update_certificate(certificateId=other.cert_id, newStatus="ACTIVE")

    # Registering certificates from outside: without a CA, and with a registered CA.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / "own.key"), "-out", str(tmp_path / "own.pem"), "-days", "30",
                    "-subj", "/CN=own"], check=True, capture_output=True)
    own = iot.register_certificate_without_ca(certificatePem=(tmp_path / "own.pem").read_text(), status="ACTIVE")
    assert iot.describe_certificate(certificateId=own["certificateId"])["certificateDescription"]["certificateMode"] == "SNI_ONLY"
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.register_certificate_without_ca(certificatePem=(tmp_path / "own.pem").read_text())
    with pytest.raises(ClientErrorType(iot)) as e:
        iot.register_certificate(certificatePem=(tmp_path / "own.pem").read_text())
    assert e.value.response["Error"]["Code"] == "CertificateValidationException"

    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / "myca.key"), "-out", str(tmp_path / "myca.pem"), "-days", "30",
                    "-subj", "/CN=my CA", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign"], check=True, capture_output=True)
    ca = iot.register_ca_certificate(caCertificate=(tmp_path / "myca.pem").read_text(), setAsActive=True)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / "leaf.key"), "-out", str(tmp_path / "leaf.csr"), "-subj", "/CN=leaf"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(tmp_path / "leaf.csr"), "-CA", str(tmp_path / "myca.pem"),
                    "-CAkey", str(tmp_path / "myca.key"), "-CAcreateserial", "-out", str(tmp_path / "leaf.pem"), "-days", "5"],
                   check=True, capture_output=True)
    leaf = iot.register_certificate(certificatePem=(tmp_path / "leaf.pem").read_text(), setAsActive=True)
    assert iot.describe_certificate(certificateId=leaf["certificateId"])["certificateDescription"]["caCertificateId"] == ca["certificateId"]
    assert iot.describe_ca_certificate(certificateId=ca["certificateId"])["certificateDescription"]["status"] == "ACTIVE"
    with pytest.raises(iot.exceptions.CertificateStateException):
        iot.delete_ca_certificate(certificateId=ca["certificateId"])
    iot.update_ca_certificate(certificateId=ca["certificateId"], newStatus="INACTIVE")
    iot.delete_ca_certificate(certificateId=ca["certificateId"])


def ClientErrorType(iot):
    from botocore.exceptions import ClientError
    return ClientError


def test_cli_policy_explain_keys_audit_and_ca(tls_server, device_policy, tmp_path):
    import conftest as e2e
    dev = provision(tls_server, tmp_path, policy=device_policy)
    base = [str(e2e.drover_bin())]
    api = ["--data-dir", str(tls_server.data_dir), "--endpoint", f"http://127.0.0.1:{tls_server.http_port}"]

    def run(*args):
        return subprocess.run(base + list(args), capture_output=True, text=True, timeout=30)

    allowed = run("policy", "explain", *api, "--thing", dev.thing, "--action", "iot:Publish", "--topic", f"things/{dev.thing}/t")
    assert allowed.returncode == 0 and allowed.stdout.startswith("ALLOWED"), allowed.stdout + allowed.stderr
    assert device_policy in allowed.stdout and "statement 2" in allowed.stdout
    denied = run("policy", "explain", *api, "--thing", dev.thing, "--action", "iot:Subscribe", "--topic", "things/#")
    assert denied.returncode == 1 and denied.stdout.startswith("IMPLICIT_DENY"), denied.stdout + denied.stderr

    ca = run("ca", "show", "--data-dir", str(tls_server.data_dir))
    assert ca.returncode == 0 and ca.stdout == (Path(tls_server.data_dir) / "ca.pem").read_text()

    assert run("keys", "create", *api, "--name", "cli-test").returncode != 0  # a role or a policy is needed
    policy_file = tmp_path / "describe-only.json"
    policy_file.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:DescribeThing", "Resource": "*"}]}))
    custom = run("keys", "create", *api, "--name", "cli-policy", "--policy", str(policy_file))
    assert custom.returncode == 0, custom.stderr
    assert json.loads(json.loads(custom.stdout)["policy"])["Statement"][0]["Action"] == "iot:DescribeThing"
    created = run("keys", "create", *api, "--name", "cli-test", "--role", "read-only")
    key = json.loads(created.stdout)
    assert created.returncode == 0 and len(key["secretAccessKey"]) == 40
    assert aws.iot(tls_server, key=(key["accessKeyId"], key["secretAccessKey"])).list_things(maxResults=1) is not None
    assert run("keys", "revoke", *api, key["accessKeyId"]).returncode == 0
    listed = run("keys", "list", *api)
    # The same over HTTPS, checked against the server's CA (DATA_DIR/ca.pem by default).
    secure = run("keys", "list", "--data-dir", str(tls_server.data_dir), "--endpoint", f"https://localhost:{tls_server.https_port}")
    assert secure.returncode == 0 and json.loads(secure.stdout) == json.loads(listed.stdout), secure.stderr
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca), "-days", "1", "-subj", "/CN=Other"],
                   check=True, capture_output=True)
    untrusted = run("keys", "list", "--data-dir", str(tls_server.data_dir), "--endpoint",
                    f"https://localhost:{tls_server.https_port}", "--ca-file", str(other_ca))
    assert untrusted.returncode != 0 and "cannot reach" in untrusted.stderr
    entry = [k for k in json.loads(listed.stdout)["accessKeys"] if k["accessKeyId"] == key["accessKeyId"]]
    assert entry and entry[0]["status"] == "Revoked" and entry[0]["role"] == "read-only"
    assert key["secretAccessKey"] not in listed.stdout

    audit = run("audit", *api, "--operation", "RevokeAccessKey")
    assert audit.returncode == 0 and f"access-key/{key['accessKeyId']}" in audit.stdout and "success" in audit.stdout
    bad = run("audit", "--data-dir", str(tmp_path), "--endpoint", f"http://127.0.0.1:{tls_server.http_port}")
    assert bad.returncode != 0 and "credentials" in bad.stderr


def test_policy_attached_to_a_thing_group_applies_to_its_things(tls_server, tmp_path):
    iot = aws.iot(tls_server)
    group = "fleet_" + uid("g")[-6:]
    iot.create_thing_group(thingGroupName=group + "_parent")
    iot.create_thing_group(thingGroupName=group, parentGroupName=group + "_parent")
    name = "group_policy_" + uid("p")[-6:]
    iot.create_policy(policyName=name, policyDocument=policy_document("fleet"))
    parent_arn = iot.describe_thing_group(thingGroupName=group + "_parent")["thingGroupArn"]
    iot.attach_policy(policyName=name, target=parent_arn)
    dev = provision(tls_server, tmp_path, policy=None)
    client = TlsClient(tls_server, dev)
    try:
        assert client.connect() == 0x87, "no policy yet: the connection must be refused"
    finally:
        client.stop()
    iot.add_thing_to_thing_group(thingGroupName=group, thingName=dev.thing)
    assert name in [p["policyName"] for p in iot.get_effective_policies(principal=dev.cert_arn, thingName=dev.thing)["effectivePolicies"]]
    client = TlsClient(tls_server, dev)
    try:
        assert client.connect() == 0
        assert client.publish(f"fleet/{dev.thing}/x", b"via the group's policy") in (0, 0x10)
        assert client.publish(f"things/{dev.thing}/x", b"not in this policy") == 0x87
    finally:
        client.stop()
    assert parent_arn in iot.list_targets_for_policy(policyName=name)["targets"]


def test_mosquitto_clients_over_mutual_tls(tls_server, device_policy, tmp_path, clients):
    """The README's tour: mosquitto_pub and mosquitto_sub (MQTT 3.1.1) with the issued certificate."""
    dev = provision(tls_server, tmp_path, policy=device_policy)
    tls = ["-h", "localhost", "-p", str(tls_server.mqtts_port), "--cafile", str(dev.ca), "--cert", str(dev.cert),
           "--key", str(dev.key)]
    observer = Paho(tls_server.mqtt_port)
    clients.append(observer)
    observer.connect()
    observer.subscribe(f"things/{dev.thing}/#", qos=1)

    refused = subprocess.run(["mosquitto_pub", *tls, "-i", "intruder", "-t", f"things/{dev.thing}/temp", "-m", "x", "-q", "1"],
                             capture_output=True, text=True, timeout=15)
    assert refused.returncode != 0 and "not authori" in (refused.stderr + refused.stdout).lower(), refused
    pub = subprocess.run(["mosquitto_pub", *tls, "-i", dev.thing, "-t", f"things/{dev.thing}/temp", "-m", "21.5", "-q", "1"],
                         capture_output=True, text=True, timeout=15)
    assert pub.returncode == 0, pub.stderr
    assert [m.payload for m in observer.wait_messages(1, 5)] == [b"21.5"]

    sub = subprocess.Popen(["mosquitto_sub", *tls, "-i", dev.thing, "-q", "1", "-t", f"things/{dev.thing}/cmd",
                            "-C", "1", "-W", "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sender = Paho(tls_server.mqtt_port)
        clients.append(sender)
        sender.connect()
        deadline = time.monotonic() + 8
        while sub.poll() is None and time.monotonic() < deadline:
            sender.publish(f"things/{dev.thing}/cmd", b"reboot", qos=1)
            time.sleep(0.3)
        out, err = sub.communicate(timeout=10)
        assert sub.returncode == 0 and out.strip() == "reboot", (out, err)
    finally:
        if sub.poll() is None:
            sub.kill()


def test_bring_your_own_ca(drover_factory, tmp_path):
    key, cert = tmp_path / "byo.key", tmp_path / "byo.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "365", "-subj", "/CN=Our Own Root",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    os.chmod(key, 0o600)
    srv = drover_factory(DROVER_CA_CERTIFICATE_FILE=str(cert), DROVER_CA_PRIVATE_KEY_FILE=str(key))
    assert not (Path(srv.data_dir) / "ca.key").exists(), "a CA key was generated although one was configured"
    iot = aws.iot(srv)
    issued = iot.create_keys_and_certificate(setAsActive=True)
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued["certificatePem"])
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(cert), str(leaf)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    ca_id = iot.describe_certificate(certificateId=issued["certificateId"])["certificateDescription"]["caCertificateId"]
    assert "Our Own Root" in subprocess.run(["openssl", "x509", "-noout", "-subject"], input=iot.describe_ca_certificate(
        certificateId=ca_id)["certificateDescription"]["certificatePem"], capture_output=True, text=True).stdout


def test_private_key_readable_by_others_is_refused_at_startup(tmp_path):
    import conftest as e2e
    key, cert = tmp_path / "open.key", tmp_path / "open.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=open"], check=True, capture_output=True)
    os.chmod(key, 0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    env.update(DROVER_CA_CERTIFICATE_FILE=str(cert), DROVER_CA_PRIVATE_KEY_FILE=str(key))
    out = subprocess.run([str(e2e.drover_bin()), "serve", "--data-dir", str(tmp_path / "data"), "--mqtt-port", "0",
                          "--mqtts-port", "0", "--http-port", "0"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "chmod 600" in out.stderr and str(key) in out.stderr, out.stderr[-2000:]


def test_policy_change_applies_to_connected_clients_at_once(tls_server, tmp_path):
    iot = aws.iot(tls_server)
    name = "live_" + uid("p")[-6:]
    iot.create_policy(policyName=name, policyDocument=policy_document())
    dev = provision(tls_server, tmp_path, policy=name)
    client = TlsClient(tls_server, dev)
    try:
        assert client.connect() == 0
        topic = f"things/{dev.thing}/data"
        assert client.publish(topic, b"before") in (0, 0x10)
        # A new default version that denies publishing: the connected client is refused at once,
        # although its earlier decision for this topic was cached.
        deny = json.loads(policy_document())
        deny["Statement"].append({"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/things/*"})
        iot.create_policy_version(policyName=name, policyDocument=json.dumps(deny), setAsDefault=True)
        assert client.publish(topic, b"after") == 0x87
        # And back: the old version as the default again.
        iot.set_default_policy_version(policyName=name, policyVersionId="1")
        assert client.publish(topic, b"again") in (0, 0x10)
        # Detaching the policy from the certificate: refused from the next publish on.
        iot.detach_policy(policyName=name, target=dev.cert_arn)
        assert client.publish(topic, b"detached") == 0x87
        assert not client.disconnected.is_set(), "a policy change is not a reason to disconnect"
    finally:
        client.stop()
    assert name in [p["policyName"] for p in iot.list_policies()["policies"]]
    assert iot.list_targets_for_policy(policyName=name)["targets"] == []


def shadow_policy() -> str:
    name = "${iot:Connection.Thing.ThingName}"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/{name}"},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": f"arn:aws:iot:*:*:topic/$aws/things/{name}/shadow/*"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"arn:aws:iot:*:*:topicfilter/$aws/things/{name}/shadow/*"},
        ],
    })


def sdk_connection(srv, dev: Device):
    """The AWS IoT Device SDK v2's MQTT connection over mutual TLS, connected."""
    from awsiot import mqtt_connection_builder
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=srv.mqtts_port, cert_filepath=str(dev.cert), pri_key_filepath=str(dev.key),
        ca_filepath=str(dev.ca), client_id=dev.thing, clean_session=True, keep_alive_secs=30)
    connection.connect().result(10)
    return connection


def test_aws_iot_device_sdk_shadow_client(tls_server, tmp_path):
    """The v2 SDK's shadow client over mutual TLS: get, update reported, a delta caused by a
    boto3 iot-data update, a named shadow, a version conflict, an oversized document, and a
    policy that reaches only the device's own shadow."""
    from awscrt import mqtt as crt_mqtt
    from awsiot import iotshadow

    iot = aws.iot(tls_server)
    policy = "shadow_policy_" + uid("p")[-6:]
    iot.create_policy(policyName=policy, policyDocument=shadow_policy())
    dev = provision(tls_server, tmp_path, policy=policy)
    thing = dev.thing
    connection = sdk_connection(tls_server, dev)
    shadow = iotshadow.IotShadowClient(connection)
    qos = crt_mqtt.QoS.AT_LEAST_ONCE
    events: dict[str, list] = {k: [] for k in ("get", "get_rej", "upd", "upd_rej", "delta", "named")}
    cond = threading.Condition()

    def recorder(key):
        def record(response):
            with cond:
                events[key].append(response)
                cond.notify_all()
        return record

    def wait_for(key, n=1, timeout=5):
        with cond:
            assert cond.wait_for(lambda: len(events[key]) >= n, timeout), f"no {key} event: {events}"
            return events[key][n - 1]

    try:
        for future in [
            shadow.subscribe_to_get_shadow_accepted(iotshadow.GetShadowSubscriptionRequest(thing_name=thing), qos, recorder("get"))[0],
            shadow.subscribe_to_get_shadow_rejected(iotshadow.GetShadowSubscriptionRequest(thing_name=thing), qos, recorder("get_rej"))[0],
            shadow.subscribe_to_update_shadow_accepted(iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), qos, recorder("upd"))[0],
            shadow.subscribe_to_update_shadow_rejected(iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), qos, recorder("upd_rej"))[0],
            shadow.subscribe_to_shadow_delta_updated_events(iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing), qos, recorder("delta"))[0],
            shadow.subscribe_to_update_named_shadow_accepted(iotshadow.UpdateNamedShadowSubscriptionRequest(shadow_name="config", thing_name=thing), qos, recorder("named"))[0],
        ]:
            future.result(10)

        # No shadow yet: get is rejected with 404.
        shadow.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing, client_token="g1"), qos).result(10)
        assert wait_for("get_rej").code == 404

        # Report, then get.
        shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(reported={"fw": "1.0", "led": "off"}), client_token="u1"), qos).result(10)
        accepted = wait_for("upd")
        assert accepted.version == 1 and accepted.client_token == "u1" and accepted.state.reported == {"fw": "1.0", "led": "off"}
        assert accepted.timestamp is not None
        shadow.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing, client_token="g2"), qos).result(10)
        got = wait_for("get")
        assert got.state.reported == {"fw": "1.0", "led": "off"} and got.version == 1 and got.client_token == "g2"

        # An operator's desired change through boto3 iot-data reaches the device as a delta.
        aws.iot_data(tls_server).update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"led": "on"}}}))
        delta = wait_for("delta")
        assert delta.state == {"led": "on"} and delta.version == 2

        # A version conflict and an oversized document are rejected with AWS's codes.
        shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(reported={"led": "on"}), version=1), qos).result(10)
        assert wait_for("upd_rej").code == 409
        shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(reported={"blob": "x" * 70000})), qos).result(10)
        assert wait_for("upd_rej", 2).code == 413

        # A named shadow.
        shadow.publish_update_named_shadow(iotshadow.UpdateNamedShadowRequest(
            shadow_name="config", thing_name=thing, state=iotshadow.ShadowState(reported={"interval": 30})), qos).result(10)
        assert wait_for("named").state.reported == {"interval": 30}

        # The policy reaches only this thing's shadow.
        future, _ = shadow.subscribe_to_shadow_delta_updated_events(
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name="someone_else"), qos, recorder("delta"))
        with pytest.raises(crt_mqtt.SubscribeError):
            future.result(10)
    finally:
        connection.disconnect().result(10)


def test_aws_iot_device_sdk_empty_objects_and_null_state(tls_server, tmp_path):
    """AWS's shadow semantics through the v2 SDK: {} is a value that reaches the delta, and
    "state": null clears the shadow with "state": null and a metadata timestamp in the answer."""
    from awscrt import mqtt as crt_mqtt
    from awsiot import iotshadow

    iot = aws.iot(tls_server)
    policy = "shadow_empty_" + uid("p")[-6:]
    iot.create_policy(policyName=policy, policyDocument=shadow_policy())
    dev = provision(tls_server, tmp_path, policy=policy)
    thing = dev.thing
    connection = sdk_connection(tls_server, dev)
    shadow = iotshadow.IotShadowClient(connection)
    qos = crt_mqtt.QoS.AT_LEAST_ONCE
    events: dict[str, list] = {"delta": [], "raw": []}
    cond = threading.Condition()

    def recorder(key):
        def record(response):
            with cond:
                events[key].append(response)
                cond.notify_all()
        return record

    def raw_recorder(topic, payload, **kwargs):
        with cond:
            events["raw"].append(payload)
            cond.notify_all()

    def wait_for(key, n, timeout=5):
        with cond:
            assert cond.wait_for(lambda: len(events[key]) >= n, timeout), f"no {key} event: {events}"
            return events[key][n - 1]

    try:
        shadow.subscribe_to_shadow_delta_updated_events(
            iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing), qos, recorder("delta"))[0].result(10)
        # One subscription to /update/accepted (a second one on the same filter would replace the
        # SDK's callback); its payloads are read with the SDK's own model.
        connection.subscribe(f"$aws/things/{thing}/shadow/update/accepted", qos, raw_recorder)[0].result(10)

        def accepted_n(n):
            return iotshadow.UpdateShadowResponse.from_payload(json.loads(wait_for("raw", n)))

        shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(desired={"d": {}, "p": {"c": 3}}), client_token="e1"), qos).result(10)
        accepted = accepted_n(1)
        assert accepted.state.desired == {"d": {}, "p": {"c": 3}}
        delta = wait_for("delta", 1)
        assert delta.state == {"d": {}, "p": {"c": 3}}

        # {} over a value leaves {}, and the parent stays.
        shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(
            thing_name=thing, state=iotshadow.ShadowState(desired={"p": {"c": {}}}), client_token="e2"), qos).result(10)
        accepted_n(2)
        stored = json.loads(aws.iot_data(tls_server).get_thing_shadow(thingName=thing)["payload"].read())
        assert stored["state"]["desired"] == {"d": {}, "p": {"c": {}}}
        assert stored["state"]["delta"] == {"d": {}, "p": {"c": {}}}

        # "state": null: the SDK cannot send it through its model, so publish it as AWS's docs show.
        connection.publish(f"$aws/things/{thing}/shadow/update", json.dumps({"state": None, "clientToken": "n1"}), qos)[0].result(10)
        raw = json.loads(wait_for("raw", 3))
        assert raw["state"] is None and raw["clientToken"] == "n1"
        assert set(raw["metadata"]) == {"timestamp"} and raw["version"] == 3
        cleared = accepted_n(3)
        assert cleared.version == 3 and cleared.state is None
        got = json.loads(aws.iot_data(tls_server).get_thing_shadow(thingName=thing)["payload"].read())
        assert got["state"] == {} and got["version"] == 3
    finally:
        connection.disconnect().result(10)


def _fetch_credentials(srv, port: int, alias: str, dev: Device | None, thing: str | None = None) -> tuple[int, dict]:
    """What a device does (the AWS IoT credentials provider's own call): GET with its certificate."""
    import http.client
    context = ssl.create_default_context(cafile=str(Path(srv.data_dir) / "ca.pem"))
    if dev is not None:
        context.load_cert_chain(str(dev.cert), str(dev.key))
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        headers = {"x-amzn-iot-thingname": thing} if thing else {}
        conn.request("GET", f"/role-aliases/{alias}/credentials", headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_role_aliases_and_the_credentials_provider(drover_factory, tmp_path):
    import boto3
    from botocore.config import Config
    import conftest as e2e
    port = e2e.free_port()
    srv = drover_factory(DROVER_E2E_TLS="1", DROVER_CREDENTIALS_PORT=str(port))
    iot = aws.iot(srv)
    account = "123456789012"

    # The control plane of role aliases.
    created = iot.create_role_alias(roleAlias="dev-read", roleArn=f"arn:aws:iam::{account}:role/read-only",
                                    credentialDurationSeconds=900, tags=[{"Key": "k", "Value": "v"}])
    assert created["roleAliasArn"].endswith(":rolealias/dev-read")
    described = iot.describe_role_alias(roleAlias="dev-read")["roleAliasDescription"]
    assert described["roleArn"] == f"arn:aws:iam::{account}:role/read-only" and described["credentialDurationSeconds"] == 900
    assert described["owner"] == account
    assert iot.list_tags_for_resource(resourceArn=created["roleAliasArn"])["tags"] == [{"Key": "k", "Value": "v"}]
    iot.create_role_alias(roleAlias="dev-ops", roleArn=f"arn:aws:iam::{account}:role/operator")
    assert iot.list_role_aliases()["roleAliases"] == ["dev-ops", "dev-read"]
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_role_alias(roleAlias="dev-read", roleArn=f"arn:aws:iam::{account}:role/read-only")
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.create_role_alias(roleAlias="bad", roleArn=f"arn:aws:iam::{account}:role/SomeIAMRole")
    assert "one of Drover's API roles" in e.value.response["Error"]["Message"]
    # boto3 checks the lower bound itself; a raw signed request meets the server's.
    status, _, body = aws.signed(srv, "POST", "/role-aliases/short", body=json.dumps(
        {"roleArn": f"arn:aws:iam::{account}:role/read-only", "credentialDurationSeconds": 60}).encode())
    assert status == 400 and body["message"] == "credentialDurationSeconds must be between 900 and 43200, not 60"
    iot.update_role_alias(roleAlias="dev-ops", credentialDurationSeconds=1200)
    assert iot.describe_role_alias(roleAlias="dev-ops")["roleAliasDescription"]["credentialDurationSeconds"] == 1200
    iot.delete_role_alias(roleAlias="dev-ops")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_role_alias(roleAlias="dev-ops")

    # A device trades its certificate for temporary keys with the role's rights.
    dev = provision(srv, tmp_path)
    status, body = _fetch_credentials(srv, port, "dev-read", dev, thing=dev.thing)
    assert status == 200, body
    creds = body["credentials"]
    assert creds["accessKeyId"].startswith("ASIA") and creds["secretAccessKey"] and creds["sessionToken"]
    expiration = datetime.datetime.fromisoformat(creds["expiration"].replace("Z", "+00:00"))
    left = (expiration - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert 850 < left <= 900

    def client(token: str | None):
        return boto3.client("iot", endpoint_url=aws.endpoint(srv), region_name=aws.REGION, verify=aws.ca_file(srv),
                            aws_access_key_id=creds["accessKeyId"], aws_secret_access_key=creds["secretAccessKey"],
                            aws_session_token=token, config=Config(retries={"max_attempts": 1}))

    temporary = client(creds["sessionToken"])
    assert temporary.describe_thing(thingName=dev.thing)["thingName"] == dev.thing
    with pytest.raises(temporary.exceptions.UnauthorizedException):
        temporary.create_thing(thingName="not_allowed")  # read-only
    # Without its session token, or with another, the key does not work.
    from botocore.exceptions import ClientError
    for token in (None, "forged"):
        with pytest.raises(ClientError) as e:
            client(token).describe_thing(thingName=dev.thing)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Temporary keys are not listed with the long-lived ones.
    status, _, listed = aws.signed(srv, "GET", "/drover/access-keys")
    assert status == 200 and all(not k["accessKeyId"].startswith("ASIA") for k in listed["accessKeys"])

    # A new fetch replaces the device's previous key for the alias.
    status, again = _fetch_credentials(srv, port, "dev-read", dev)
    assert status == 200 and again["credentials"]["accessKeyId"] != creds["accessKeyId"]
    with pytest.raises(ClientError) as e:
        temporary.describe_thing(thingName=dev.thing)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # MQTT over WebSocket with the temporary keys (the Device SDK's signing), and only with their token.
    from awscrt import auth
    from awsiot import mqtt_connection_builder as builder
    iot.create_role_alias(roleAlias="dev-mqtt", roleArn=f"arn:aws:iam::{account}:role/operator")
    status, mqtt_body = _fetch_credentials(srv, port, "dev-mqtt", dev)
    assert status == 200
    mqtt_creds = mqtt_body["credentials"]

    def ws_connection(token):
        provider = auth.AwsCredentialsProvider.new_static(mqtt_creds["accessKeyId"], mqtt_creds["secretAccessKey"], token)
        return builder.websockets_with_default_aws_signing(
            endpoint="localhost", port=srv.https_port, region=aws.REGION, credentials_provider=provider,
            ca_filepath=str(Path(srv.data_dir) / "ca.pem"), client_id="ws-" + uid("tmp"), clean_session=True, keep_alive_secs=30)

    connection = ws_connection(mqtt_creds["sessionToken"])
    connection.connect().result(15)
    connection.disconnect().result(10)
    with pytest.raises(Exception):
        ws_connection("forged").connect().result(15)

    # Refusals: an unknown alias, a thing not attached to the certificate, no certificate, a
    # deactivated certificate.
    status, body = _fetch_credentials(srv, port, "nope", dev)
    assert status == 404 and "nope" in body["message"]
    other = uid("other").replace("-", "_")
    iot.create_thing(thingName=other)
    status, body = _fetch_credentials(srv, port, "dev-read", dev, thing=other)
    assert status == 403 and "not attached" in body["message"]
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _fetch_credentials(srv, port, "dev-read", None)
    # Hostile requests: a body, another method, an oversized head, bytes that are not HTTP.
    import socket
    context = ssl.create_default_context(cafile=str(Path(srv.data_dir) / "ca.pem"))
    context.load_cert_chain(str(dev.cert), str(dev.key))

    def raw(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(request)
                chunks = []
                while True:
                    try:
                        chunk = tls.recv(65536)
                    except (ssl.SSLError, ConnectionError):
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
                return b"".join(chunks)

    assert raw(b"POST /role-aliases/dev-read/credentials HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").startswith(b"HTTP/1.1 405")
    assert raw(b"GET /role-aliases/dev-read/credentials HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert raw(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert not raw(b"\x00\xff garbage \r\n\r\n").startswith(b"HTTP/1.1 200")
    assert _fetch_credentials(srv, port, "dev-read", dev)[0] == 200

    # Deactivating the certificate ends its temporary keys too, and the next handshake fails.
    status, latest = _fetch_credentials(srv, port, "dev-read", dev)
    assert status == 200
    creds = latest["credentials"]
    assert client(creds["sessionToken"]).describe_thing(thingName=dev.thing)["thingName"] == dev.thing
    iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
    with pytest.raises(ClientError) as e:
        client(creds["sessionToken"]).describe_thing(thingName=dev.thing)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _fetch_credentials(srv, port, "dev-read", dev)
    assert srv.alive()


def test_cli_certificates_create_chooses_the_key(tls_server, tmp_path):
    """`drover certificates create`: the key type the operator names, the key in a 0600 file, and
    a certificate a device connects with."""
    import conftest as e2e
    api = ["--data-dir", str(tls_server.data_dir), "--endpoint", f"http://127.0.0.1:{tls_server.http_port}"]

    def run(*args):
        return subprocess.run([str(e2e.drover_bin()), "certificates", "create", *api, *args],
                              capture_output=True, text=True, timeout=60)

    made = run("--key-algorithm", "EC_prime256v1", "--set-as-active", "--out", str(tmp_path / "ec"))
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    key = tmp_path / "ec.private.key"
    assert (os.stat(key).st_mode & 0o777) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert aws.iot(tls_server).describe_certificate(certificateId=answer["certificateId"])["certificateDescription"]["status"] == "ACTIVE"
    rsa = run("--out", str(tmp_path / "rsa"))
    assert rsa.returncode == 0, rsa.stderr
    assert (tmp_path / "rsa.private.key").read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert aws.iot(tls_server).describe_certificate(
        certificateId=json.loads(rsa.stdout)["certificateId"])["certificateDescription"]["status"] == "INACTIVE"
    # The files are not overwritten, and a bad key type is refused before any call.
    again = run("--out", str(tmp_path / "rsa"))
    assert again.returncode != 0 and "exists" in again.stderr
    bad = run("--key-algorithm", "DSA", "--out", str(tmp_path / "dsa"))
    assert bad.returncode != 0 and "RSA_2048 or EC_prime256v1" in bad.stderr
    assert not (tmp_path / "dsa.private.key").exists()

"""Access keys with policies: each ready-made role allows what it should and gets
UnauthorizedException for the rest, a key cannot create a key with more rights than its own,
denials are in the audit log, and a revoked key stays revoked across a restart."""

from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError

import aws
from clients import uid


def make_key(srv, creator=None, **body) -> tuple[str, str]:
    status, _, created = aws.signed(srv, "POST", "/drover/access-keys", json.dumps({"name": uid("k"), **body}).encode(),
                                    key=creator)
    assert status == 200, created
    return created["accessKeyId"], created["secretAccessKey"]


def denied(call) -> str:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["Error"]["Code"] == "UnauthorizedException", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return e.value.response["Error"]["Message"]


def test_each_role_allows_its_operations_and_refuses_the_rest(drover):
    admin = aws.iot(drover)
    thing = uid("role").replace("-", "_")
    admin.create_thing(thingName=thing)
    policy = uid("pol").replace("-", "_")
    admin.create_policy(policyName=policy, policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))

    # read-only: reads, never writes, never sees the keys.
    ro = make_key(drover, role="read-only")
    assert aws.iot(drover, key=ro).describe_thing(thingName=thing)["thingName"] == thing
    assert aws.iot(drover, key=ro).list_things()["things"] is not None
    message = denied(lambda: aws.iot(drover, key=ro).create_thing(thingName=thing + "_x"))
    assert f"{ro[0]} is not authorized to perform: iot:CreateThing on resource: arn:aws:iot:us-east-1:" in message
    assert message.endswith(f":thing/{thing}_x")
    denied(lambda: aws.iot_data(drover, key=ro).update_thing_shadow(
        thingName=thing, payload=json.dumps({"state": {"desired": {"a": 1}}})))
    status, headers, _ = aws.signed(drover, "GET", "/drover/access-keys", key=ro)
    assert status == 403 and headers.get("x-amzn-ErrorType") == "UnauthorizedException"

    # provisioner: brings devices on with existing policies, but writes no policy and deletes nothing.
    prov = make_key(drover, role="provisioner")
    piot = aws.iot(drover, key=prov)
    device = uid("dev").replace("-", "_")
    piot.create_thing(thingName=device)
    cert = piot.create_keys_and_certificate(setAsActive=True)
    piot.attach_thing_principal(thingName=device, principal=cert["certificateArn"])
    piot.attach_policy(policyName=policy, target=cert["certificateArn"])
    denied(lambda: piot.create_policy(policyName=policy + "_all", policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})))
    denied(lambda: piot.delete_thing(thingName=thing))
    denied(lambda: piot.list_things())
    status, _, _ = aws.signed(drover, "POST", "/drover/access-keys", json.dumps({"role": "read-only"}).encode(), key=prov)
    assert status == 403

    # operator: runs the fleet, shadows included, but not keys or CAs.
    op = make_key(drover, role="operator")
    oiot = aws.iot(drover, key=op)
    oiot.update_thing(thingName=thing, attributePayload={"attributes": {"a": "1"}})
    aws.iot_data(drover, key=op).update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"a": 1}}}))
    status, _, _ = aws.signed(drover, "GET", "/drover/audit?maxResults=1", key=op)
    assert status == 200
    status, _, body = aws.signed(drover, "POST", "/drover/access-keys", json.dumps({"role": "read-only"}).encode(), key=op)
    assert status == 403 and "drover:CreateAccessKey" in body["message"]
    ca_pem = open(os.path.join(drover.data_dir, "ca.pem")).read()
    denied(lambda: oiot.register_ca_certificate(caCertificate=ca_pem))

    # No secret or private key in the server's log or the audit log.
    status, _, log = aws.signed(drover, "GET", "/drover/audit?maxResults=1000")
    text = open(drover.log_path).read() + json.dumps(log)
    for secret in (ro[1], prov[1], op[1], aws.admin_credentials(drover)[1]):
        assert secret not in text
    assert "PRIVATE KEY" not in text

    # The denials are in the audit log, with who, what and on what.
    status, _, log = aws.signed(drover, "GET", f"/drover/audit?principal={ro[0]}")
    outcomes = [(e["operation"], e["outcome"]) for e in log["entries"]]
    assert ("CreateThing", "UnauthorizedException") in outcomes
    assert ("UpdateThingShadow", "UnauthorizedException") in outcomes
    assert ("ListAccessKeys", "UnauthorizedException") in outcomes


def test_custom_policies_resources_deny_and_no_escalation(drover):
    admin = aws.iot(drover)
    mine, other = uid("sensor").replace("-", "_"), uid("pump").replace("-", "_")
    admin.create_thing(thingName=mine)
    admin.create_thing(thingName=other)
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iot:Describe*", "iot:UpdateThing", "drover:CreateAccessKey"],
         "Resource": ["arn:aws:iot:*:*:thing/sensor*", "*"]},
        {"Effect": "Deny", "Action": "iot:UpdateThing", "Resource": f"arn:aws:iot:*:*:thing/{mine}"}]}
    limited = make_key(drover, policy=json.dumps(document))
    liot = aws.iot(drover, key=limited)
    assert liot.describe_thing(thingName=other)["thingName"] == other
    # The explicit Deny wins over the Allow.
    denied(lambda: liot.update_thing(thingName=mine, attributePayload={"attributes": {"x": "1"}}))
    liot.update_thing(thingName=other, attributePayload={"attributes": {"x": "1"}})

    # It may create keys, but none with more than it has, and each keeps its Deny.
    for wider in ({"role": "admin"}, {"role": "operator"},
                  {"policy": json.dumps({"Version": "2012-10-17", "Statement": [
                      {"Effect": "Allow", "Action": "iot:UpdateThing", "Resource": "*"}]})},
                  {"policy": json.dumps({"Version": "2012-10-17", "Statement": [
                      {"Effect": "Allow", "Action": "iot:D*", "Resource": "*"}]})}):
        status, headers, body = aws.signed(drover, "POST", "/drover/access-keys", json.dumps(wider).encode(), key=limited)
        assert status == 403 and headers.get("x-amzn-ErrorType") == "UnauthorizedException", (wider, body)
        assert "rights it does not have" in body["message"]
    narrower = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:DescribeThing", "Resource": "*"},
        document["Statement"][1]]}
    sub = make_key(drover, creator=limited, policy=json.dumps(narrower))
    assert aws.iot(drover, key=sub).describe_thing(thingName=mine)["thingName"] == mine
    denied(lambda: aws.iot(drover, key=sub).update_thing(thingName=other, attributePayload={"attributes": {}}))


@pytest.mark.parametrize("policy,fragment", [
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*",
                                              "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}, "Condition"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}, "invalid action"),
    ({"Version": "2012-10-17", "Statement": []}, "at least one Statement"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "iot:*", "Resource": "*"}]}, "Effect"),
])
def test_bad_key_policies_are_refused_with_the_reason(drover, policy, fragment):
    status, headers, body = aws.signed(drover, "POST", "/drover/access-keys",
                                       json.dumps({"name": "bad", "policy": json.dumps(policy)}).encode())
    assert status == 400 and headers.get("x-amzn-ErrorType") == "MalformedPolicyException"
    assert fragment in body["message"]
    status, _, body = aws.signed(drover, "POST", "/drover/access-keys", json.dumps({"role": "root"}).encode())
    assert status == 400 and "read-only" in body["message"]


def test_a_revoked_configured_key_stays_revoked_after_a_restart(tmp_path_factory):
    from test_durability import DurableServer, SQLITE
    workdir = tmp_path_factory.mktemp("revoked")
    secret_file = workdir / "secret"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"s3cr3tKeyMaterial0123456789")
    os.close(fd)
    env = dict(SQLITE, DROVER_API_ACCESS_KEY_ID="DRVRCONFIGURED000001", DROVER_API_SECRET_ACCESS_KEY_FILE=str(secret_file))
    srv = DurableServer(workdir / "srv", env)
    try:
        srv.start()
        configured = ("DRVRCONFIGURED000001", "s3cr3tKeyMaterial0123456789")
        assert aws.iot(srv, key=configured).list_things() is not None
        # The admin key file is created 0600.
        assert os.stat(os.path.join(srv.data_dir, "admin-credentials")).st_mode & 0o777 == 0o600
        assert os.stat(os.path.join(srv.data_dir, "ca.key")).st_mode & 0o777 == 0o600
        status, _, _ = aws.signed(srv, "DELETE", "/drover/access-keys/DRVRCONFIGURED000001")
        assert status == 200
        srv.restart_after_kill9()
        with pytest.raises(ClientError) as e:
            aws.iot(srv, key=configured).list_things()
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
        status, _, listed = aws.signed(srv, "GET", "/drover/access-keys")
        entry = [k for k in listed["accessKeys"] if k["accessKeyId"] == configured[0]]
        assert entry and entry[0]["status"] == "Revoked"
        assert configured[1] not in json.dumps(listed)
    finally:
        srv.stop()

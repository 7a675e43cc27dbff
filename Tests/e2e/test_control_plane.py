"""The AWS IoT control plane with boto3, botocore signing and the AWS CLI: things, thing types,
DescribeEndpoint, SigV4 (headers and presigned URLs), the AWS error shapes, the audit log."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
import urllib.parse
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import aws
from clients import uid

pytestmark = pytest.mark.skipif(os.environ.get("DROVER_E2E_MOSQUITTO") == "1", reason="Drover-only API")


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_admin_credentials_file_is_private(drover):
    path = Path(drover.data_dir) / "admin-credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key_id, secret = aws.admin_credentials(drover)
    assert len(key_id) == 20 and len(secret) == 40
    assert secret not in Path(drover.log_path).read_text(), "the secret key is in the server log"


def test_thing_lifecycle(drover):
    iot = aws.iot(drover)
    name = uid("thing").replace("-", "_")
    created = iot.create_thing(thingName=name, attributePayload={"attributes": {"model": "m1", "site": "lab"}})
    assert created["thingName"] == name
    assert created["thingArn"] == f"arn:aws:iot:us-east-1:123456789012:thing/{name}"
    assert created["thingId"]
    # The same create again is answered with the same thing (AWS is idempotent here).
    assert iot.create_thing(thingName=name, attributePayload={"attributes": {"model": "m1", "site": "lab"}})["thingId"] == created["thingId"]

    described = iot.describe_thing(thingName=name)
    assert described["attributes"] == {"model": "m1", "site": "lab"}
    assert described["version"] == 1 and described["defaultClientId"] == name

    iot.update_thing(thingName=name, attributePayload={"attributes": {"site": "field", "fw": "1.2"}, "merge": True},
                     expectedVersion=1)
    described = iot.describe_thing(thingName=name)
    assert described["attributes"] == {"model": "m1", "site": "field", "fw": "1.2"} and described["version"] == 2
    # Without merge the attributes are replaced; an empty value removes a key with merge.
    iot.update_thing(thingName=name, attributePayload={"attributes": {"fw": ""}, "merge": True})
    assert "fw" not in iot.describe_thing(thingName=name)["attributes"]
    iot.update_thing(thingName=name, attributePayload={"attributes": {"only": "this"}})
    assert iot.describe_thing(thingName=name)["attributes"] == {"only": "this"}

    with pytest.raises(ClientError) as e:
        iot.update_thing(thingName=name, attributePayload={"attributes": {"a": "b"}}, expectedVersion=1)
    assert error_code(e) == "VersionConflictException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ClientError) as e:
        iot.delete_thing(thingName=name, expectedVersion=1)
    assert error_code(e) == "VersionConflictException"

    iot.delete_thing(thingName=name, expectedVersion=iot.describe_thing(thingName=name)["version"])
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as e:
        iot.describe_thing(thingName=name)
    assert name in e.value.response["Error"]["Message"]


def test_thing_errors(drover):
    iot = aws.iot(drover)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="no_such_thing")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.update_thing(thingName="no_such_thing", attributePayload={"attributes": {"a": "b"}})
    name = uid("dup").replace("-", "_")
    iot.create_thing(thingName=name, attributePayload={"attributes": {"v": "1"}})
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as e:
        iot.create_thing(thingName=name, attributePayload={"attributes": {"v": "2"}})
    assert "already exists" in e.value.response["Error"]["Message"]
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.create_thing(thingName="bad name with spaces")
    assert "thing name" in e.value.response["Error"]["Message"]
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_thing(thingName=uid("x").replace("-", "_"), attributePayload={"attributes": {"k": "no spaces allowed"}})
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.create_thing(thingName=uid("typed").replace("-", "_"), thingTypeName="no_such_type")
    # Deleting a thing that does not exist succeeds, as on AWS.
    iot.delete_thing(thingName="never_existed")


def test_list_things_filters_and_pages(drover):
    iot = aws.iot(drover)
    prefix = uid("fleet").replace("-", "_")
    iot.create_thing_type(thingTypeName=prefix + "_type")
    for i in range(7):
        typed = {"thingTypeName": prefix + "_type"} if i % 2 == 0 else {}
        iot.create_thing(thingName=f"{prefix}_{i}", attributePayload={"attributes": {"batch": prefix, "slot": f"s{i}"}},
                         **typed)
    names: list[str] = []
    token = None
    pages = 0
    while True:
        kwargs = {"maxResults": 3, "attributeName": "batch", "attributeValue": prefix}
        if token:
            kwargs["nextToken"] = token
        page = iot.list_things(**kwargs)
        pages += 1
        names += [t["thingName"] for t in page["things"]]
        token = page.get("nextToken")
        if not token:
            break
    assert names == [f"{prefix}_{i}" for i in range(7)] and pages == 3
    typed = iot.list_things(thingTypeName=prefix + "_type")["things"]
    assert sorted(t["thingName"] for t in typed) == [f"{prefix}_{i}" for i in (0, 2, 4, 6)]
    prefixed = iot.list_things(attributeName="slot", attributeValue="s", usePrefixAttributeValue=True, maxResults=250)
    assert {f"{prefix}_{i}" for i in range(7)} <= {t["thingName"] for t in prefixed["things"]}
    # Every page of botocore's paginator too.
    all_names = [t["thingName"] for p in iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 2})
                 for t in p["things"]]
    assert {f"{prefix}_{i}" for i in range(7)} <= set(all_names)
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.list_things(maxResults=1000)
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.list_things(nextToken="not-a-token!")


def test_thing_types(drover):
    iot = aws.iot(drover)
    name = uid("type").replace("-", "_")
    created = iot.create_thing_type(thingTypeName=name, thingTypeProperties={
        "thingTypeDescription": "sensors", "searchableAttributes": ["model"]})
    assert created["thingTypeArn"].endswith(f":thingtype/{name}")
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing_type(thingTypeName=name)
    described = iot.describe_thing_type(thingTypeName=name)
    assert described["thingTypeProperties"]["thingTypeDescription"] == "sensors"
    assert described["thingTypeMetadata"]["deprecated"] is False
    assert isinstance(described["thingTypeMetadata"]["creationDate"], datetime.datetime)
    assert name in [t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]]

    thing = uid("t").replace("-", "_")
    iot.create_thing(thingName=thing, thingTypeName=name)
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.delete_thing_type(thingTypeName=name)
    assert "deprecated" in e.value.response["Error"]["Message"]
    iot.deprecate_thing_type(thingTypeName=name)
    assert iot.describe_thing_type(thingTypeName=name)["thingTypeMetadata"]["deprecated"] is True
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_thing(thingName=thing + "_2", thingTypeName=name)
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.delete_thing_type(thingTypeName=name)
    assert "still used" in e.value.response["Error"]["Message"]
    iot.deprecate_thing_type(thingTypeName=name, undoDeprecate=True)
    assert iot.describe_thing_type(thingTypeName=name)["thingTypeMetadata"]["deprecated"] is False
    iot.update_thing(thingName=thing, removeThingType=True)
    iot.deprecate_thing_type(thingTypeName=name)
    iot.delete_thing_type(thingTypeName=name)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing_type(thingTypeName=name)


def test_describe_endpoint_and_region_from_signature(drover_factory):
    srv = drover_factory(DROVER_API_REGIONS="us-east-1,eu-west-1")
    assert aws.iot(srv).describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    name = uid("eu").replace("-", "_")
    arn = aws.iot(srv, region="eu-west-1").create_thing(thingName=name)["thingArn"]
    assert arn.startswith("arn:aws:iot:eu-west-1:123456789012:thing/")
    # A region the server does not answer for is refused, as AWS refuses a foreign scope.
    with pytest.raises(ClientError) as e:
        aws.iot(srv, region="ap-south-1").list_things()
    assert error_code(e) == "InvalidSignatureException"
    assert "scoped to a valid region" in e.value.response["Error"]["Message"]


def test_signature_scope_host_and_body_are_checked_by_the_server(drover):
    """The SigV4 rules over the wire, with botocore's signer: the service must match the route,
    the Host must be one of the server's names, and a body must hash to what was signed."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    key = aws.admin_credentials(drover)

    def sign(method, path, body=b"", service="iot", host=None, headers=None):
        req = AWSRequest(method=method, url=aws.endpoint(drover) + path, data=body, headers=dict(headers or {}))
        if host:
            req.headers["Host"] = host
        SigV4Auth(Credentials(*key), service, aws.REGION).add_auth(req)
        return aws.send(method, req.url, body, dict(req.headers))

    assert sign("GET", "/things")[0] == 200
    # iot-data routes take `iotdata`, the control plane `iot`.
    status, headers, body = sign("GET", "/things", service="iotdata")
    assert status == 403 and "scoped to correct service: 'iot'" in body["message"]
    status, headers, body = sign("GET", "/things", service="s3")
    assert status == 403 and headers.get("x-amzn-ErrorType") == "InvalidSignatureException"
    # A name that is not the server's, in a signed Host header.
    status, _, body = sign("GET", "/things", host="evil.example")
    assert status == 403 and "evil.example" in body["message"]
    # x-amz-content-sha256 that is not the body's: refused before the body counts.
    thing = uid("sha").replace("-", "_")
    payload = b'{"attributePayload":{"attributes":{"a":"1"}}}'
    status, _, body = sign("POST", f"/things/{thing}", payload,
                           headers={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()})
    assert status == 403 and "does not match the SHA-256 of the body" in body["message"]
    status, _, body = sign("POST", f"/things/{thing}", payload, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert status == 403 and "UNSIGNED-PAYLOAD" in body["message"]
    # A captured request replayed with another body: refused, and nothing was written.
    req = AWSRequest(method="POST", url=aws.endpoint(drover) + f"/things/{thing}", data=payload,
                     headers={"X-Amz-Content-SHA256": hashlib.sha256(payload).hexdigest()})
    SigV4Auth(Credentials(*key), "iot", aws.REGION).add_auth(req)
    status, _, body = aws.send("POST", req.url, b'{"attributePayload":{"attributes":{"a":"2"}}}', dict(req.headers))
    assert status == 403 and "does not match" in body["message"]
    with pytest.raises(ClientError) as e:
        aws.iot(drover).describe_thing(thingName=thing)
    assert error_code(e) == "ResourceNotFoundException"
    assert aws.send("POST", req.url, payload, dict(req.headers))[0] == 200
    assert aws.iot(drover).describe_thing(thingName=thing)["attributes"] == {"a": "1"}


def test_unsigned_and_badly_signed_requests_are_refused(drover):
    status, headers, body = aws.send("GET", aws.endpoint(drover) + "/things")
    assert status == 403 and headers.get("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert "not signed" in body["message"]

    key_id, _ = aws.admin_credentials(drover)
    with pytest.raises(ClientError) as e:
        aws.iot(drover, key=(key_id, "x" * 40)).list_things()
    assert error_code(e) == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "signature does not match" in e.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as e:
        aws.iot(drover, key=("DRVRNOSUCHKEY0000000", "x" * 40)).list_things()
    assert error_code(e) == "UnrecognizedClientException"

    # A body changed after signing.
    status, _, _ = aws.signed(drover, "POST", "/things/tampered", b'{"attributePayload":{}}')
    assert status == 200
    key = aws.admin_credentials(drover)
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="POST", url=aws.endpoint(drover) + "/things/tampered2", data=b'{"a":1}')
    SigV4Auth(Credentials(*key), "iot", aws.REGION).add_auth(req)
    status, headers, _ = aws.send("POST", req.url, b'{"a":2}', dict(req.headers))
    assert status == 403 and headers.get("x-amzn-ErrorType") == "InvalidSignatureException"


def test_clock_skew_over_15_minutes_is_refused(drover):
    now = datetime.datetime.now(datetime.timezone.utc)
    ok = aws.send("GET", aws.endpoint(drover) + "/things", headers=aws.sign_at(drover, "GET", "/things", now))
    assert ok[0] == 200, ok
    for skew in (datetime.timedelta(minutes=16), -datetime.timedelta(minutes=16)):
        status, headers, body = aws.send("GET", aws.endpoint(drover) + "/things",
                                         headers=aws.sign_at(drover, "GET", "/things", now + skew))
        assert status == 403 and headers.get("x-amzn-ErrorType") == "InvalidSignatureException"
        assert "15 minutes" in body["message"]


def test_presigned_url(drover):
    iot = aws.iot(drover)
    name = uid("pre").replace("-", "_")
    iot.create_thing(thingName=name)
    url = iot.generate_presigned_url("describe_thing", Params={"thingName": name}, ExpiresIn=60)
    status, _, body = aws.send("GET", url)
    assert status == 200 and body["thingName"] == name
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    query["X-Amz-Signature"] = ["0" * 64]
    bad = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, doseq=True)))
    status, headers, _ = aws.send("GET", bad)
    assert status == 403 and headers.get("x-amzn-ErrorType") == "InvalidSignatureException"

    # Expired: signed with botocore 61 s ago for 60 s. Future-dated: signed 16 minutes ahead.
    # (boto3 signs with awscrt's signer when awscrt is installed, as it is here: both are patched.)
    from unittest import mock
    real_now = datetime.datetime.now(datetime.timezone.utc)
    for shift, fragment in ((-61, "expired"), (16 * 60, "15 minutes")):
        def shifted_now(remove_tzinfo=True, shift=shift):
            moment = real_now + datetime.timedelta(seconds=shift)
            return moment.replace(tzinfo=None) if remove_tzinfo else moment
        with mock.patch("botocore.auth.get_current_datetime", shifted_now), \
             mock.patch("botocore.crt.auth.get_current_datetime", shifted_now):
            shifted = iot.generate_presigned_url("describe_thing", Params={"thingName": name}, ExpiresIn=60)
        status, headers, body = aws.send("GET", shifted)
        assert status == 403 and headers.get("x-amzn-ErrorType") == "InvalidSignatureException", body
        assert fragment in body["message"], body
    # Without X-Amz-Expires.
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    del query["X-Amz-Expires"]
    stripped = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, doseq=True)))
    status, headers, _ = aws.send("GET", stripped)
    assert status == 403 and headers.get("x-amzn-ErrorType") == "AuthorizationQueryParametersError"


def test_aws_cli(drover):
    name = uid("cli").replace("-", "_")
    out = aws.aws_cli(drover, "iot", "create-thing", "--thing-name", name, "--attribute-payload",
                      '{"attributes":{"via":"cli"}}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["thingName"] == name
    out = aws.aws_cli(drover, "iot", "describe-thing", "--thing-name", name)
    assert out.returncode == 0 and json.loads(out.stdout)["attributes"] == {"via": "cli"}
    out = aws.aws_cli(drover, "iot", "describe-thing", "--thing-name", "missing_thing_cli")
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr


def test_access_keys_and_audit_log(drover):
    status, _, created = aws.signed(drover, "POST", "/drover/access-keys",
                                    json.dumps({"name": "ci", "role": "operator"}).encode())
    assert status == 200 and created["secretAccessKey"]
    key = (created["accessKeyId"], created["secretAccessKey"])
    name = uid("audited").replace("-", "_")
    aws.iot(drover, key=key).create_thing(thingName=name)
    with pytest.raises(ClientError):
        aws.iot(drover, key=key).update_thing(thingName=name, attributePayload={}, expectedVersion=9)

    status, _, log = aws.signed(drover, "GET", f"/drover/audit?resource={name}")
    assert status == 200
    entries = [(e["operation"], e["outcome"], e["principal"]) for e in log["entries"]]
    assert entries == [("UpdateThing", "VersionConflictException", key[0]), ("CreateThing", "success", key[0])]
    status, _, log = aws.signed(drover, "GET", f"/drover/audit?principal={key[0]}&operation=CreateThing")
    assert [e["resource"] for e in log["entries"]] == [name]
    # By time: nothing after now, everything of this test since a minute ago.
    later = int(datetime.datetime.now(datetime.timezone.utc).timestamp()) + 60
    status, _, log = aws.signed(drover, "GET", f"/drover/audit?resource={name}&from={later}")
    assert status == 200 and log["entries"] == []
    status, _, log = aws.signed(drover, "GET", f"/drover/audit?resource={name}&from={later - 120}&to={later}")
    assert len(log["entries"]) == 2
    status, _, body = aws.signed(drover, "GET", "/drover/audit?from=yesterday")
    assert status == 400 and "ISO 8601" in body["message"]

    status, _, listed = aws.signed(drover, "GET", "/drover/access-keys")
    mine = [k for k in listed["accessKeys"] if k["accessKeyId"] == key[0]]
    assert len(mine) == 1 and mine[0]["role"] == "operator" and mine[0]["status"] == "Active"
    assert json.loads(mine[0]["policy"])["Statement"]
    assert all("secretAccessKey" not in k for k in listed["accessKeys"])
    status, _, _ = aws.signed(drover, "DELETE", f"/drover/access-keys/{key[0]}")
    assert status == 200
    with pytest.raises(ClientError) as e:
        aws.iot(drover, key=key).list_things()
    assert error_code(e) == "UnrecognizedClientException"


def test_registry_survives_kill9(tmp_path_factory):
    from test_durability import DurableServer, SQLITE
    srv = DurableServer(tmp_path_factory.mktemp("registry"), dict(SQLITE))
    try:
        srv.start()
        iot = aws.iot(srv)
        iot.create_thing_type(thingTypeName="durable_type")
        iot.create_thing(thingName="durable_thing", thingTypeName="durable_type",
                         attributePayload={"attributes": {"k": "v"}})
        key = aws.admin_credentials(srv)
        srv.kill9()
        srv.start()
        assert aws.admin_credentials(srv) == key, "the admin key changed across a restart"
        iot = aws.iot(srv)
        assert iot.describe_thing(thingName="durable_thing")["attributes"] == {"k": "v"}
        assert iot.describe_thing_type(thingTypeName="durable_type")["thingTypeName"] == "durable_type"
    finally:
        srv.stop()


def test_thing_groups(drover):
    iot = aws.iot(drover)
    p = uid("g").replace("-", "_")
    root = iot.create_thing_group(thingGroupName=f"{p}_root", thingGroupProperties={
        "thingGroupDescription": "all", "attributePayload": {"attributes": {"region": "eu", "tier": "std"}}})
    assert root["thingGroupArn"].endswith(f":thinggroup/{p}_root")
    iot.create_thing_group(thingGroupName=f"{p}_child", parentGroupName=f"{p}_root",
                           thingGroupProperties={"attributePayload": {"attributes": {"tier": "gold"}}})
    iot.create_thing_group(thingGroupName=f"{p}_leaf", parentGroupName=f"{p}_child")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.create_thing_group(thingGroupName=f"{p}_orphan", parentGroupName="no_such_group")

    leaf = iot.describe_thing_group(thingGroupName=f"{p}_leaf")
    assert leaf["thingGroupMetadata"]["parentGroupName"] == f"{p}_child"
    assert [g["groupName"] for g in leaf["thingGroupMetadata"]["rootToParentThingGroups"]] == [f"{p}_root", f"{p}_child"]
    # Attribute propagation: inherited from the ancestors, the nearest wins (Drover's field).
    status, _, raw = aws.signed(drover, "GET", f"/thing-groups/{p}_leaf")
    assert raw["effectiveAttributes"] == {"region": "eu", "tier": "gold"}

    for i in range(3):
        iot.create_thing(thingName=f"{p}_t{i}")
    iot.add_thing_to_thing_group(thingGroupName=f"{p}_leaf", thingName=f"{p}_t0")
    iot.add_thing_to_thing_group(thingGroupArn=root["thingGroupArn"], thingName=f"{p}_t1")
    iot.update_thing_groups_for_thing(thingName=f"{p}_t2", thingGroupsToAdd=[f"{p}_child", f"{p}_leaf"])
    assert iot.list_things_in_thing_group(thingGroupName=f"{p}_leaf")["things"] == [f"{p}_t0", f"{p}_t2"]
    assert iot.list_things_in_thing_group(thingGroupName=f"{p}_root")["things"] == [f"{p}_t1"]
    assert iot.list_things_in_thing_group(thingGroupName=f"{p}_root", recursive=True)["things"] == [f"{p}_t0", f"{p}_t1", f"{p}_t2"]
    assert [g["groupName"] for g in iot.list_thing_groups_for_thing(thingName=f"{p}_t2")["thingGroups"]] == [f"{p}_child", f"{p}_leaf"]
    children = iot.list_thing_groups(parentGroup=f"{p}_root", recursive=False)["thingGroups"]
    assert [g["groupName"] for g in children] == [f"{p}_child"]
    everything = iot.list_thing_groups(parentGroup=f"{p}_root", recursive=True)["thingGroups"]
    assert [g["groupName"] for g in everything] == [f"{p}_child", f"{p}_leaf"]
    assert [g["groupName"] for g in iot.list_thing_groups(namePrefixFilter=p)["thingGroups"]] == [f"{p}_child", f"{p}_leaf", f"{p}_root"]

    iot.update_thing_groups_for_thing(thingName=f"{p}_t2", thingGroupsToRemove=[f"{p}_leaf"])
    iot.remove_thing_from_thing_group(thingGroupName=f"{p}_leaf", thingName=f"{p}_t0")
    assert iot.list_things_in_thing_group(thingGroupName=f"{p}_leaf")["things"] == []

    version = iot.update_thing_group(thingGroupName=f"{p}_child", thingGroupProperties={
        "attributePayload": {"attributes": {"tier": "platinum"}, "merge": True}}, expectedVersion=1)["version"]
    assert version == 2
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.update_thing_group(thingGroupName=f"{p}_child", thingGroupProperties={"thingGroupDescription": "x"}, expectedVersion=1)
    status, _, raw = aws.signed(drover, "GET", f"/thing-groups/{p}_leaf")
    assert raw["effectiveAttributes"]["tier"] == "platinum"

    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.delete_thing_group(thingGroupName=f"{p}_root")
    assert "child groups" in e.value.response["Error"]["Message"]
    for g in ("leaf", "child", "root"):
        iot.delete_thing_group(thingGroupName=f"{p}_{g}")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing_group(thingGroupName=f"{p}_root")
    assert iot.list_thing_groups_for_thing(thingName=f"{p}_t1")["thingGroups"] == []
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_thing_group(thingGroupName="bad group name")
    many = [f"{p}_many{i}" for i in range(11)]
    for g in many:
        iot.create_thing_group(thingGroupName=g)
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.update_thing_groups_for_thing(thingName=f"{p}_t1", thingGroupsToAdd=many)
    assert "at most 10" in e.value.response["Error"]["Message"]
    assert iot.list_thing_groups_for_thing(thingName=f"{p}_t1")["thingGroups"] == [], "a refused update was half-applied"


def _key_text(pem: str) -> str:
    import subprocess
    return subprocess.run(["openssl", "pkey", "-noout", "-text"], input=pem, capture_output=True, text=True).stdout


def test_keys_are_rsa_2048_by_default_as_on_aws(drover):
    """boto3 and the AWS CLI cannot name a key type: the default must be AWS's, RSA 2048 in PKCS#1."""
    import subprocess
    iot = aws.iot(drover)
    default = iot.create_keys_and_certificate(setAsActive=False)
    assert default["keyPair"]["PrivateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert default["keyPair"]["PublicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "Private-Key: (2048 bit" in _key_text(default["keyPair"]["PrivateKey"])
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=default["certificatePem"], capture_output=True, text=True).stdout
    assert "rsaEncryption" in text and "2048 bit" in text
    assert iot.describe_certificate(certificateId=default["certificateId"])["certificateDescription"]["status"] == "INACTIVE"
    result = aws.aws_cli(drover, "iot", "create-keys-and-certificate")
    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)
    assert cli["keyPair"]["PrivateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    # Drover's own parameter still asks for EC P-256.
    status, _, body = aws.signed(drover, "POST", "/keys-and-certificate?keyAlgorithm=EC_prime256v1&setAsActive=true")
    assert status == 200, body
    assert body["keyPair"]["PrivateKey"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "ASN1 OID: prime256v1" in _key_text(body["keyPair"]["PrivateKey"])
    status, _, body = aws.signed(drover, "POST", "/keys-and-certificate?keyAlgorithm=DSA")
    assert status == 400 and body["message"] == "keyAlgorithm must be RSA_2048 or EC_prime256v1, not 'DSA'"


def test_default_key_algorithm_is_configurable(drover_factory):
    srv = drover_factory(DROVER_CA_DEFAULT_KEY_ALGORITHM="EC_prime256v1")
    keys = aws.iot(srv).create_keys_and_certificate(setAsActive=True)
    assert keys["keyPair"]["PrivateKey"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "ASN1 OID: prime256v1" in _key_text(keys["keyPair"]["PrivateKey"])


def test_list_certificates_pages_in_creation_order(drover_factory):
    """ListCertificates and ListCertificatesByCA, as AWS orders them: by creation date, newest first
    unless ascendingOrder, every page through botocore's paginator, the same after a restart."""
    srv = drover_factory(DROVER_CA_DEFAULT_KEY_ALGORITHM="EC_prime256v1")
    iot = aws.iot(srv)
    made = [iot.create_keys_and_certificate(setAsActive=i % 2 == 0)["certificateId"] for i in range(7)]
    ca = iot.describe_certificate(certificateId=made[0])["certificateDescription"]["caCertificateId"]
    # Ids are hashes: their order is not the creation order.
    assert sorted(made) != made

    def listed(operation: str, **kwargs) -> list[str]:
        pages = iot.get_paginator(operation).paginate(PaginationConfig={"PageSize": 2}, **kwargs)
        return [c["certificateId"] for page in pages for c in page["certificates"]]

    def check() -> None:
        assert listed("list_certificates", ascendingOrder=True) == made
        assert listed("list_certificates") == made[::-1]
        assert listed("list_certificates_by_ca", caCertificateId=ca, ascendingOrder=True) == made
        assert listed("list_certificates_by_ca", caCertificateId=ca, ascendingOrder=False) == made[::-1]

    check()
    # A deleted certificate leaves the listing.
    iot.update_certificate(certificateId=made[3], newStatus="INACTIVE")
    iot.delete_certificate(certificateId=made[3])
    del made[3]
    check()
    srv.stop()
    srv.start()
    iot = aws.iot(srv)
    check()
    # (A malformed CA id or page size is refused by botocore before it is sent; the registry's
    # own refusals are unit-tested.)
    assert iot.list_certificates_by_ca(caCertificateId="d" * 64)["certificates"] == []


def test_bad_default_key_algorithm_stops_the_start(tmp_path):
    import subprocess
    import conftest as e2e
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROVER_")}
    env["DROVER_CA_DEFAULT_KEY_ALGORITHM"] = "RSA_1024"
    result = subprocess.run([str(e2e.drover_bin()), "serve", "--data-dir", str(tmp_path / "data"), "--mqtt-port", "0",
                             "--mqtts-port", "0", "--http-port", "0", "--https-port", "0"],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "ca.default_key_algorithm must be RSA_2048 or EC_prime256v1, not 'RSA_1024'" in result.stdout + result.stderr


def test_access_key_named_in_the_configuration(drover_factory, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("automation-secret-0123456789abcdef\n")
    os.chmod(secret, 0o600)
    srv = drover_factory(DROVER_API_ACCESS_KEY_ID="AUTOMATIONKEY00001", DROVER_API_SECRET_ACCESS_KEY_FILE=str(secret))
    iot = aws.iot(srv, key=("AUTOMATIONKEY00001", "automation-secret-0123456789abcdef"))
    assert iot.create_thing(thingName="made_by_automation")["thingName"] == "made_by_automation"
    assert "automation-secret" not in Path(srv.log_path).read_text()

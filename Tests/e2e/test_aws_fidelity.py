"""Where Drover must answer exactly as AWS IoT does: the texts and shapes that boto3 users match
on, and the registry operations that their scripts call (billing groups, tags, principal
types, the older principal-policy operations)."""
from __future__ import annotations

import json

import pytest

import aws
from clients import uid


def error(excinfo) -> dict:
    return excinfo.value.response["Error"] | {"body": excinfo.value.response}


def message(excinfo) -> str:
    return excinfo.value.response["Error"]["Message"]


ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]})


# Shadows, over iot-data

def test_empty_object_is_a_shadow_value(drover):
    data = aws.iot_data(drover)
    thing = uid("sh").replace("-", "_")
    aws.iot(drover).create_thing(thingName=thing)
    data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"d": {}}, "reported": {"c": 3, "k": 1}}}))
    got = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
    assert got["state"]["desired"] == {"d": {}}
    assert got["state"]["delta"] == {"d": {}}
    data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"reported": {"c": {}}}}))
    got = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
    assert got["state"]["reported"] == {"c": {}, "k": 1}, "writing {} over a value must leave {}"
    # A section given as {} changes nothing, but is an accepted update.
    answer = json.loads(data.update_thing_shadow(thingName=thing, payload=b'{"state":{"desired":{}}}')["payload"].read())
    assert answer["version"] == 3
    got = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
    assert got["state"]["desired"] == {"d": {}}


def test_null_state_clears_the_shadow_as_aws_answers(drover):
    data = aws.iot_data(drover)
    thing = uid("sh").replace("-", "_")
    aws.iot(drover).create_thing(thingName=thing)
    data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"a": 1}, "reported": {"b": 2}}}))
    answer = json.loads(data.update_thing_shadow(thingName=thing, payload=b'{"state":null}')["payload"].read())
    assert answer["state"] is None
    assert list(answer["metadata"]) == ["timestamp"] and isinstance(answer["metadata"]["timestamp"], int)
    assert answer["version"] == 2
    got = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
    assert got["state"] == {} and got["version"] == 2


# Messages

def test_aws_error_texts(drover):
    iot = aws.iot(drover)
    p = uid("fx").replace("-", "_")
    keys = iot.create_keys_and_certificate(setAsActive=True)
    cert_id, cert_arn = keys["certificateId"], keys["certificateArn"]
    iot.create_thing(thingName=f"{p}_t")
    iot.attach_thing_principal(thingName=f"{p}_t", principal=cert_arn)
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.delete_thing(thingName=f"{p}_t")
    assert message(e) == f"Cannot delete. Thing {p}_t is still attached to one or more principals"

    with pytest.raises(iot.exceptions.ResourceNotFoundException) as e:
        iot.list_thing_principals(thingName=f"{p}_missing")
    assert message(e) == f"Failed to list principals for thing {p}_missing because the thing does not exist in your account"

    with pytest.raises(iot.exceptions.ResourceNotFoundException) as e:
        iot.list_targets_for_policy(policyName=f"{p}_nopolicy")
    assert message(e) == "Policy not found"

    iot.create_thing_group(thingGroupName=f"{p}_g", thingGroupProperties={"thingGroupDescription": "one"})
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as e:
        iot.create_thing_group(thingGroupName=f"{p}_g", thingGroupProperties={"thingGroupDescription": "two"})
    assert message(e) == f"Thing Group {p}_g already exists in current account with different properties"
    assert e.value.response["resourceArn"].endswith(f":thinggroup/{p}_g")
    assert e.value.response["resourceId"] == iot.describe_thing_group(thingGroupName=f"{p}_g")["thingGroupId"]

    iot.create_policy(policyName=f"{p}_pol", policyDocument=ALLOW_ALL)
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as e:
        iot.create_policy(policyName=f"{p}_pol", policyDocument=ALLOW_ALL)
    assert message(e) == f"Policy cannot be created - name already exists (name={p}_pol)"

    iot.attach_policy(policyName=f"{p}_pol", target=cert_arn)
    with pytest.raises(iot.exceptions.DeleteConflictException) as e:
        iot.delete_policy(policyName=f"{p}_pol")
    assert message(e) == f"The policy cannot be deleted as the policy is attached to one or more principals (name={p}_pol)"

    for _ in range(4):
        iot.create_policy_version(policyName=f"{p}_pol", policyDocument=ALLOW_ALL)
    with pytest.raises(iot.exceptions.VersionsLimitExceededException) as e:
        iot.create_policy_version(policyName=f"{p}_pol", policyDocument=ALLOW_ALL)
    assert message(e) == f"The policy {p}_pol already has the maximum number of versions (5)"

    with pytest.raises(iot.exceptions.CertificateStateException) as e:
        iot.delete_certificate(certificateId=cert_id)
    assert message(e) == f"Certificate must be deactivated (not ACTIVE) before deletion. Id: {cert_id}"


def test_registering_a_certificate_twice_names_it(drover):
    iot = aws.iot(drover)
    keys = iot.create_keys_and_certificate(setAsActive=False)
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as e:
        iot.register_certificate_without_ca(certificatePem=keys["certificatePem"])
    assert message(e) == "The certificate is already provisioned or registered"
    assert e.value.response["resourceId"] == keys["certificateId"]
    assert e.value.response["resourceArn"] == keys["certificateArn"]


# Shapes

def test_group_listing_and_description_shapes(drover):
    iot = aws.iot(drover)
    p = uid("sp").replace("-", "_")
    iot.create_thing_group(thingGroupName=f"{p}_root")
    iot.create_thing_group(thingGroupName=f"{p}_child", parentGroupName=f"{p}_root")
    top = [g["groupName"] for g in iot.list_thing_groups(recursive=False, namePrefixFilter=p)["thingGroups"]]
    assert top == [f"{p}_root"]
    every = [g["groupName"] for g in iot.list_thing_groups(namePrefixFilter=p)["thingGroups"]]
    assert every == [f"{p}_child", f"{p}_root"]
    described = iot.describe_thing_group(thingGroupName=f"{p}_root")
    assert "attributePayload" not in described["thingGroupProperties"]
    iot.update_thing_group(thingGroupName=f"{p}_root", thingGroupProperties={"attributePayload": {"attributes": {"a": "1"}}})
    assert iot.describe_thing_group(thingGroupName=f"{p}_root")["thingGroupProperties"]["attributePayload"]["attributes"] == {"a": "1"}


def test_list_thing_types_matches_the_name_as_a_prefix(drover):
    iot = aws.iot(drover)
    p = uid("tt").replace("-", "_")
    for name in (f"{p}_sensor", f"{p}_sensor_v2", f"{p}_gateway"):
        iot.create_thing_type(thingTypeName=name)
    names = [t["thingTypeName"] for t in iot.list_thing_types(thingTypeName=f"{p}_sensor")["thingTypes"]]
    assert names == [f"{p}_sensor", f"{p}_sensor_v2"]


# Billing groups

def test_billing_groups(drover):
    iot = aws.iot(drover)
    p = uid("bg").replace("-", "_")
    created = iot.create_billing_group(billingGroupName=f"{p}_a", billingGroupProperties={"billingGroupDescription": "lab"},
                                       tags=[{"Key": "team", "Value": "hw"}])
    assert created["billingGroupArn"].endswith(f":billinggroup/{p}_a") and created["billingGroupId"]
    iot.create_billing_group(billingGroupName=f"{p}_b")
    described = iot.describe_billing_group(billingGroupName=f"{p}_a")
    assert described["version"] == 1 and described["billingGroupProperties"] == {"billingGroupDescription": "lab"}
    assert "creationDate" in described["billingGroupMetadata"]
    assert iot.list_tags_for_resource(resourceArn=created["billingGroupArn"])["tags"] == [{"Key": "team", "Value": "hw"}]
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as e:
        iot.create_billing_group(billingGroupName=f"{p}_a", billingGroupProperties={"billingGroupDescription": "other"})
    assert e.value.response["resourceArn"] == created["billingGroupArn"]

    assert iot.update_billing_group(billingGroupName=f"{p}_a", billingGroupProperties={"billingGroupDescription": "lab2"},
                                    expectedVersion=1)["version"] == 2
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.update_billing_group(billingGroupName=f"{p}_a", billingGroupProperties={}, expectedVersion=1)

    iot.create_thing(thingName=f"{p}_t1", billingGroupName=f"{p}_a")
    assert iot.describe_thing(thingName=f"{p}_t1")["billingGroupName"] == f"{p}_a"
    iot.create_thing(thingName=f"{p}_t2")
    assert "billingGroupName" not in iot.describe_thing(thingName=f"{p}_t2")
    iot.add_thing_to_billing_group(billingGroupName=f"{p}_a", thingName=f"{p}_t2")
    assert iot.list_things_in_billing_group(billingGroupName=f"{p}_a")["things"] == [f"{p}_t1", f"{p}_t2"]
    # A thing is in one billing group: adding it to another moves it.
    iot.add_thing_to_billing_group(billingGroupArn=iot.describe_billing_group(billingGroupName=f"{p}_b")["billingGroupArn"],
                                   thingArn=iot.describe_thing(thingName=f"{p}_t2")["thingArn"])
    assert iot.list_things_in_billing_group(billingGroupName=f"{p}_a")["things"] == [f"{p}_t1"]
    assert iot.list_things_in_billing_group(billingGroupName=f"{p}_b")["things"] == [f"{p}_t2"]
    iot.remove_thing_from_billing_group(billingGroupName=f"{p}_b", thingName=f"{p}_t2")
    assert iot.list_things_in_billing_group(billingGroupName=f"{p}_b")["things"] == []
    assert "billingGroupName" not in iot.describe_thing(thingName=f"{p}_t2")

    names = [g["groupName"] for g in iot.list_billing_groups(namePrefixFilter=p)["billingGroups"]]
    assert names == [f"{p}_a", f"{p}_b"]

    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.create_thing(thingName=f"{p}_t3", billingGroupName=f"{p}_missing")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName=f"{p}_t3")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.add_thing_to_billing_group(billingGroupName=f"{p}_missing", thingName=f"{p}_t1")
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_billing_group(billingGroupName="bad name")

    # Deleting the group takes its things out; deleting a missing group succeeds, as on AWS.
    with pytest.raises(iot.exceptions.VersionConflictException):
        iot.delete_billing_group(billingGroupName=f"{p}_a", expectedVersion=1)
    iot.delete_billing_group(billingGroupName=f"{p}_a")
    assert "billingGroupName" not in iot.describe_thing(thingName=f"{p}_t1")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_billing_group(billingGroupName=f"{p}_a")
    iot.delete_billing_group(billingGroupName=f"{p}_a")


def test_billing_groups_survive_a_restart(drover_factory):
    srv = drover_factory()
    iot = aws.iot(srv)
    iot.create_billing_group(billingGroupName="durable_bg")
    iot.create_thing(thingName="durable_t", billingGroupName="durable_bg")
    iot.tag_resource(resourceArn=iot.describe_thing(thingName="durable_t")["thingArn"], tags=[{"Key": "k", "Value": "v"}])
    srv.stop()
    srv.start()
    iot = aws.iot(srv)
    assert iot.list_things_in_billing_group(billingGroupName="durable_bg")["things"] == ["durable_t"]
    assert iot.describe_thing(thingName="durable_t")["billingGroupName"] == "durable_bg"
    arn = iot.describe_thing(thingName="durable_t")["thingArn"]
    assert iot.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "k", "Value": "v"}]


# Tags

def test_tags_on_resources(drover):
    iot = aws.iot(drover)
    p = uid("tg").replace("-", "_")
    thing_arn = iot.create_thing(thingName=f"{p}_t")["thingArn"]
    group_arn = iot.create_thing_group(thingGroupName=f"{p}_g", tags=[{"Key": "env", "Value": "prod"}])["thingGroupArn"]
    policy_arn = iot.create_policy(policyName=f"{p}_p", policyDocument=ALLOW_ALL, tags=[{"Key": "owner", "Value": "ops"}])["policyArn"]
    type_arn = iot.create_thing_type(thingTypeName=f"{p}_type", tags=[{"Key": "k"}])["thingTypeArn"]
    assert iot.list_tags_for_resource(resourceArn=group_arn)["tags"] == [{"Key": "env", "Value": "prod"}]
    assert iot.list_tags_for_resource(resourceArn=policy_arn)["tags"] == [{"Key": "owner", "Value": "ops"}]
    assert iot.list_tags_for_resource(resourceArn=type_arn)["tags"] == [{"Key": "k", "Value": ""}]
    assert iot.list_tags_for_resource(resourceArn=thing_arn)["tags"] == []

    iot.tag_resource(resourceArn=thing_arn, tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    iot.tag_resource(resourceArn=thing_arn, tags=[{"Key": "a", "Value": "3"}])
    assert iot.list_tags_for_resource(resourceArn=thing_arn)["tags"] == [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}]
    iot.untag_resource(resourceArn=thing_arn, tagKeys=["a", "nope"])
    assert iot.list_tags_for_resource(resourceArn=thing_arn)["tags"] == [{"Key": "b", "Value": "2"}]

    # The AWS CLI too.
    result = aws.aws_cli(drover, "iot", "list-tags-for-resource", "--resource-arn", group_arn)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tags"] == [{"Key": "env", "Value": "prod"}]

    # Bad cases.
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.tag_resource(resourceArn=thing_arn.replace(f"{p}_t", f"{p}_missing"), tags=[{"Key": "a", "Value": "1"}])
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.tag_resource(resourceArn="arn:aws:s3:::bucket", tags=[{"Key": "a", "Value": "1"}])
    assert "resourceArn" in message(e)
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.tag_resource(resourceArn=thing_arn, tags=[{"Key": "aws:reserved", "Value": "1"}])
    assert "reserved" in message(e)
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.tag_resource(resourceArn=thing_arn, tags=[{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}])
    with pytest.raises(iot.exceptions.LimitExceededException):
        iot.tag_resource(resourceArn=thing_arn, tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert len(iot.list_tags_for_resource(resourceArn=thing_arn)["tags"]) == 1, "a refused tagging was half-applied"

    # A CA registered with tags.
    import subprocess, tempfile, os
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", os.path.join(tmp, "ca.key"), "-out", os.path.join(tmp, "ca.pem"), "-days", "2",
                        "-subj", f"/CN={p} CA", "-addext", "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True)
        ca_pem = open(os.path.join(tmp, "ca.pem")).read()
    ca = iot.register_ca_certificate(caCertificate=ca_pem, certificateMode="SNI_ONLY", tags=[{"Key": "vendor", "Value": "acme"}])
    assert iot.list_tags_for_resource(resourceArn=ca["certificateArn"])["tags"] == [{"Key": "vendor", "Value": "acme"}]

    # Tags go with their resource.
    iot.delete_thing(thingName=f"{p}_t")
    iot.create_thing(thingName=f"{p}_t")
    assert iot.list_tags_for_resource(resourceArn=thing_arn)["tags"] == []


# Principals

def test_thing_principal_types_and_v2_listing(drover):
    iot = aws.iot(drover)
    p = uid("pt").replace("-", "_")
    for t in ("a", "b"):
        iot.create_thing(thingName=f"{p}_{t}")
    shared = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    only = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    iot.attach_thing_principal(thingName=f"{p}_a", principal=shared)
    iot.attach_thing_principal(thingName=f"{p}_b", principal=shared, thingPrincipalType="NON_EXCLUSIVE_THING")
    iot.attach_thing_principal(thingName=f"{p}_a", principal=only, thingPrincipalType="EXCLUSIVE_THING")
    objects = iot.list_thing_principals_v2(thingName=f"{p}_a")["thingPrincipalObjects"]
    assert sorted((o["principal"], o["thingPrincipalType"]) for o in objects) == sorted(
        [(shared, "NON_EXCLUSIVE_THING"), (only, "EXCLUSIVE_THING")])
    exclusive = iot.list_thing_principals_v2(thingName=f"{p}_a", thingPrincipalType="EXCLUSIVE_THING")["thingPrincipalObjects"]
    assert exclusive == [{"principal": only, "thingPrincipalType": "EXCLUSIVE_THING"}]
    # An exclusive certificate has one thing; a shared one cannot become exclusive.
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.attach_thing_principal(thingName=f"{p}_b", principal=only)
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.attach_thing_principal(thingName=f"{p}_a", principal=shared, thingPrincipalType="EXCLUSIVE_THING")
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as e:
        iot.list_thing_principals_v2(thingName=f"{p}_missing")
    assert "does not exist" in message(e)
    # Detached, it can go elsewhere.
    iot.detach_thing_principal(thingName=f"{p}_a", principal=only)
    iot.attach_thing_principal(thingName=f"{p}_b", principal=only)
    assert len(iot.list_thing_principals(thingName=f"{p}_b")["principals"]) == 2


def test_older_principal_policy_operations(drover):
    iot = aws.iot(drover)
    p = uid("pp").replace("-", "_")
    cert = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    iot.create_policy(policyName=f"{p}_p1", policyDocument=ALLOW_ALL)
    iot.create_policy(policyName=f"{p}_p2", policyDocument=ALLOW_ALL)
    iot.attach_principal_policy(policyName=f"{p}_p1", principal=cert)
    iot.attach_principal_policy(policyName=f"{p}_p2", principal=cert)
    names = [x["policyName"] for x in iot.list_principal_policies(principal=cert)["policies"]]
    assert names == [f"{p}_p1", f"{p}_p2"]
    assert iot.list_policy_principals(policyName=f"{p}_p1")["principals"] == [cert]
    # The same attachments as the newer operations see.
    assert [x["policyName"] for x in iot.list_attached_policies(target=cert)["policies"]] == [f"{p}_p1", f"{p}_p2"]
    iot.detach_principal_policy(policyName=f"{p}_p1", principal=cert)
    assert [x["policyName"] for x in iot.list_principal_policies(principal=cert)["policies"]] == [f"{p}_p2"]
    assert iot.list_policy_principals(policyName=f"{p}_p1")["principals"] == []
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.attach_principal_policy(policyName=f"{p}_missing", principal=cert)
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.list_policy_principals(policyName=f"{p}_missing")

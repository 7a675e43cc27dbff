"""Fleet configuration benchmark (bench/config.sh): rollout of a deployment to N things, an
update to another version, and the status of the whole fleet."""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
import urllib.request

http_port, credentials, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
key = dict(line.split(" = ", 1) for line in open(credentials).read().splitlines() if " = " in line)
endpoint = f"http://127.0.0.1:{http_port}"
iot = boto3.client("iot", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key["aws_access_key_id"],
                   aws_secret_access_key=key["aws_secret_access_key"],
                   config=Config(retries={"max_attempts": 1}, max_pool_connections=16))


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    request = AWSRequest(method=method, url=endpoint + path, data=data, headers={"Content-Type": "application/json"} if data else {})
    SigV4Auth(Credentials(key["aws_access_key_id"], key["aws_secret_access_key"]), "iot", "us-east-1").add_auth(request)
    req = urllib.request.Request(request.url, data=data or None, method=method, headers=dict(request.headers))
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"{}")


iot.create_thing_group(thingGroupName="fleet")


def make(i):
    name = f"dev{i:06d}"
    iot.create_thing(thingName=name)
    iot.add_thing_to_thing_group(thingGroupName="fleet", thingName=name)


start = time.monotonic()
with ThreadPoolExecutor(16) as pool:
    list(pool.map(make, range(count)))
print(f"registry: {count} things made and grouped in {time.monotonic() - start:.1f} s")

doc1 = {"sampleRate": 10, "mode": {"eco": True, "level": 2}, "servers": ["a.example", "b.example"]}
doc2 = {"sampleRate": 30, "mode": {"eco": False, "level": 3}, "servers": ["a.example"]}
call("POST", "/config/templates/bench", {"document": doc1})
call("POST", "/config/templates/bench/versions", {"document": doc2})


def wait_complete(label):
    began = time.monotonic()
    while True:
        rollout = call("GET", "/config/deployments/bench")["rollout"]
        if rollout["applied"] == count:
            break
        time.sleep(0.05)
    return time.monotonic() - began


began = time.monotonic()
call("POST", "/config/deployments/bench", {"templateName": "bench", "templateVersion": 1, "targetType": "THING_GROUP",
                                           "targetName": "fleet"})
wait_complete("deploy")
elapsed = time.monotonic() - began
print(f"deploy v1 to {count} things: {elapsed:.2f} s, {count / elapsed:,.0f} shadows/s")
began = time.monotonic()
call("PATCH", "/config/deployments/bench", {"templateVersion": 2})
wait_complete("update")
elapsed = time.monotonic() - began
print(f"update to v2 on {count} things: {elapsed:.2f} s, {count / elapsed:,.0f} shadows/s")
began = time.monotonic()
status = call("GET", "/config/deployments/bench/status?state=PENDING&maxResults=1")
elapsed = time.monotonic() - began
print(f"status of {status['members']} members ({status['pending']} pending): {elapsed * 1000:.0f} ms")

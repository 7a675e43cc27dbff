"""boto3, botocore signing and the AWS CLI pointed at a Drover server (the `iot` control plane)."""

from __future__ import annotations

import configparser
import datetime
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"


def admin_credentials(srv) -> tuple[str, str]:
    """The admin key that the server wrote on its first start."""
    parser = configparser.ConfigParser()
    path = Path(srv.data_dir) / "admin-credentials"
    assert parser.read(path), f"no {path}"
    return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]


# The CA file of each HTTPS port that endpoint() handed out, for send() and the CLI.
_CA_FILES: dict[int, str] = {}


def endpoint(srv) -> str:
    """The API over HTTPS, as clients off the machine reach it; the server's certificate is
    checked against the server's own CA (`data_dir/ca.pem`)."""
    _CA_FILES[srv.https_port] = ca_file(srv)
    return f"https://localhost:{srv.https_port}"


def ca_file(srv) -> str:
    """The CA that issued the server's certificate: a configured one, or the one it made."""
    return getattr(srv, "env_extra", {}).get("DROVER_CA_CERTIFICATE_FILE") or str(Path(srv.data_dir) / "ca.pem")


def iot(srv, key: tuple[str, str] | None = None, region: str = REGION):
    key_id, secret = key or admin_credentials(srv)
    return boto3.client("iot", endpoint_url=endpoint(srv), region_name=region, verify=ca_file(srv),
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20))


def iot_data(srv, key: tuple[str, str] | None = None, region: str = REGION):
    key_id, secret = key or admin_credentials(srv)
    return boto3.client("iot-data", endpoint_url=endpoint(srv), region_name=region, verify=ca_file(srv),
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=20))


def signed(srv, method: str, path: str, body: bytes = b"", key: tuple[str, str] | None = None,
           region: str = REGION) -> tuple[int, dict, dict]:
    """A request signed by botocore's own SigV4 code; returns (status, headers, JSON body)."""
    key_id, secret = key or admin_credentials(srv)
    request = AWSRequest(method=method, url=endpoint(srv) + path, data=body,
                         headers={"Content-Type": "application/json"} if body else {})
    SigV4Auth(Credentials(key_id, secret), "iot", region).add_auth(request)
    return send(method, request.url, body, dict(request.headers))


def send(method: str, url: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=_CA_FILES[urllib.parse.urlsplit(url).port])
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, dict(r.headers), json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"{}")


def sign_at(srv, method: str, path: str, when: datetime.datetime, key: tuple[str, str] | None = None) -> dict:
    """Headers of a SigV4 signature made at `when` (written here from the spec, to test the clock check)."""
    key_id, secret = key or admin_credentials(srv)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    host = urllib.parse.urlsplit(endpoint(srv)).netloc
    payload = hashlib.sha256(b"").hexdigest()
    canonical = "\n".join([method, path, "", f"host:{host}\nx-amz-date:{amz_date}\n", "host;x-amz-date", payload])
    scope = f"{day}/{REGION}/iot/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, REGION, "iot", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"X-Amz-Date": amz_date,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders=host;x-amz-date, Signature={signature}"}


def aws_cli(srv, *args: str) -> subprocess.CompletedProcess:
    """The AWS CLI (from the venv) against the server, reading the admin-credentials file."""
    env = dict(os.environ)
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(Path(srv.data_dir) / "admin-credentials"),
               AWS_CONFIG_FILE="/dev/null", AWS_DEFAULT_REGION=REGION, AWS_PAGER="")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(k, None)
    cli = Path(sys.executable).parent / "aws"
    extra = [] if "--endpoint-url" in args else ["--endpoint-url", endpoint(srv), "--ca-bundle", ca_file(srv)]
    return subprocess.run([str(cli), *args, *extra, "--output", "json"],
                          env=env, capture_output=True, text=True, timeout=60)


def all_thing_names(srv) -> set[str]:
    """Every thing's name, through ListThings' pages (250 at a time)."""
    client = iot(srv)
    names: set[str] = set()
    token = None
    while True:
        page = client.list_things(maxResults=250, **({"nextToken": token} if token else {}))
        names |= {t["thingName"] for t in page["things"]}
        token = page.get("nextToken")
        if not token:
            return names

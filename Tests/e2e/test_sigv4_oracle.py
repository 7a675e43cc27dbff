"""Drover's SigV4 verifier against botocore's own signer, the oracle.

Thousands of generated requests (odd paths with repeated slashes, repeated and
unsorted query keys, spaces and Unicode, many and repeated headers, empty and binary bodies,
presigned URLs) are signed by botocore. `drover sigv4-check` must accept every one of them, and
refuse each with one byte changed: in the method, the path, the query, a signed header, the body,
the date or the signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
import time
import urllib.parse

from botocore.auth import SigV4Auth, SigV4QueryAuth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence

from conftest import drover_bin

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REQUESTS = 2000
# No "." or ".." segments: botocore signs the path without them, so Drover refuses them (below).
SEGMENT_PARTS = ["things", "a", "Z9", "dev-1", "x_y", "~t", "", "name with space", "ünï", "日本",
                 "a+b", "a=b", "50%", "semi;colon", "(paren)", "*", "it's"]
QUERY_KEYS = ["maxResults", "nextToken", "a", "A", "b", "z", "key with space", "ü", "x-amz-meta", "dup", "dup", "_"]
QUERY_VALUES = ["", "1", "10", "a b", "a+b", "a=b", "a&b", "ü", "日本", "~", "%", "-._~", "x" * 40]
HEADER_NAMES = ["Content-Type", "X-Custom", "x-amz-meta-a", "X-Mixed-Case", "User-Agent", "Accept", "x-dup", "x-dup"]
HEADER_VALUES = ["application/json", "a  b", "  padded  ", "a\tb", "v1,v2", "x" * 100, "0", "a   b   c"]


def wire_path(rng: random.Random) -> str:
    segments = [urllib.parse.quote(rng.choice(SEGMENT_PARTS), safe="") for _ in range(rng.randint(0, 5))]
    path = "/" + "/".join(segments)
    if rng.random() < 0.2:
        path += "/"
    if rng.random() < 0.1:
        path = path.replace("/", "//", 1)
    return path


def make_request(rng: random.Random, port: int) -> tuple[AWSRequest, bool]:
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
    params = [(rng.choice(QUERY_KEYS), rng.choice(QUERY_VALUES)) for _ in range(rng.choice([0, 0, 1, 2, 5]))]
    url = f"http://127.0.0.1:{port}{wire_path(rng)}"
    if params:
        url += "?" + percent_encode_sequence(params)
    body = rng.choice([b"", b"", b'{"a":1}', bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))),
                       json.dumps({"t": "ü" * rng.randint(0, 20)}).encode()])
    request = AWSRequest(method=method, url=url, data=body)
    for _ in range(rng.randint(0, 6)):
        request.headers[rng.choice(HEADER_NAMES)] = rng.choice(HEADER_VALUES)
    if body and rng.random() < 0.3:
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    presigned = method == "GET" and not body and rng.random() < 0.3
    credentials = Credentials(KEY, SECRET)
    if presigned:
        SigV4QueryAuth(credentials, "iot", "us-east-1", expires=rng.choice([1, 60, 3600, 604800])).add_auth(request)
    else:
        SigV4Auth(credentials, "iot", "us-east-1").add_auth(request)
    return request, presigned


def as_line(request: AWSRequest, now: float) -> dict:
    split = urllib.parse.urlsplit(request.url)
    headers = [["host", _host_from_url(request.url)]]
    for name, value in request.headers.items():
        headers.append([name.lower(), value])
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    return {"method": request.method, "path": split.path, "query": split.query, "headers": headers,
            "body": base64.b64encode(body).decode(), "now": now, "secret": SECRET,
            "services": ["iot"], "regions": ["us-east-1"], "hosts": ["127.0.0.1"]}


def changed_char(text: str, rng: random.Random) -> str | None:
    """`text` with one letter or digit changed to another; never inside a %XX escape, where a
    change of case would mean the same byte."""
    spots = [i for i, c in enumerate(text) if c.isascii() and c.isalnum()
             and not (i >= 1 and text[i - 1] == "%") and not (i >= 2 and text[i - 2] == "%")]
    if not spots:
        return None
    i = rng.choice(spots)
    c = text[i]
    replacement = rng.choice([x for x in "abcdefghijklmnopqrstuvwxyz0123456789" if x != c.lower()])
    return text[:i] + replacement + text[i + 1:]


def mutations(line: dict, presigned: bool, rng: random.Random):
    """(what changed, the changed request) for each kind of change that applies."""
    def copy():
        return json.loads(json.dumps(line))

    m = copy()
    m["method"] = {"GET": "POST", "POST": "PUT", "PUT": "GET", "DELETE": "GET", "PATCH": "POST"}[line["method"]]
    yield "method", m

    path = changed_char(line["path"], rng)
    if path and path != line["path"]:
        m = copy()
        m["path"] = path
        yield "path", m
    else:
        m = copy()
        m["path"] = line["path"] + "x"
        yield "path", m

    pairs = [p for p in line["query"].split("&") if p and not p.startswith("X-Amz-Signature=")] if line["query"] else []
    if pairs:
        target = rng.choice(pairs)
        changed = changed_char(target, rng)
        if changed:
            m = copy()
            m["query"] = line["query"].replace(target, changed, 1)
            yield "query", m

    body = base64.b64decode(line["body"])
    m = copy()
    if body:
        i = rng.randrange(len(body))
        body = body[:i] + bytes([body[i] ^ (1 << rng.randrange(8))]) + body[i + 1:]
    else:
        body = b"x"
    m["body"] = base64.b64encode(body).decode()
    yield "body", m

    signed = {"host"}
    if presigned:
        query = dict(urllib.parse.parse_qsl(line["query"], keep_blank_values=True))
        signed = set(query["X-Amz-SignedHeaders"].split(";"))
    else:
        auth = next(v for k, v in line["headers"] if k == "authorization")
        signed = set(auth.split("SignedHeaders=")[1].split(",")[0].split(";"))
    candidates = [i for i, (k, v) in enumerate(line["headers"])
                  if k in signed and k not in ("host", "x-amz-content-sha256") and changed_char(v, rng)]
    if candidates:
        i = rng.choice(candidates)
        m = copy()
        m["headers"][i][1] = changed_char(m["headers"][i][1], rng)
        yield "header " + line["headers"][i][0], m

    # The signature, one hex digit changed.
    m = copy()
    if presigned:
        sig = urllib.parse.parse_qs(line["query"])["X-Amz-Signature"][0]
        flipped = sig[:5] + ("0" if sig[5] != "0" else "1") + sig[6:]
        m["query"] = line["query"].replace(sig, flipped)
    else:
        for h in m["headers"]:
            if h[0] == "authorization":
                sig = h[1].rsplit("Signature=", 1)[1]
                h[1] = h[1][: -len(sig)] + sig[:5] + ("0" if sig[5] != "0" else "1") + sig[6:]
    yield "signature", m


def run_checks(lines: list[dict]) -> list[dict]:
    proc = subprocess.run([str(drover_bin()), "sigv4-check"], input="\n".join(json.dumps(l) for l in lines) + "\n",
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = [json.loads(l) for l in proc.stdout.splitlines()]
    assert len(out) == len(lines)
    return out


def test_botocore_signatures_verify_and_every_one_byte_change_is_refused():
    rng = random.Random(20261202)
    now = time.time()
    valid, changed, labels = [], [], []
    for _ in range(REQUESTS):
        request, presigned = make_request(rng, 8443)
        line = as_line(request, now)
        valid.append(line)
        for label, mutated in mutations(line, presigned, rng):
            changed.append(mutated)
            labels.append((label, line))
    outcomes = run_checks(valid)
    failures = [(l["method"], l["path"], l["query"], o) for l, o in zip(valid, outcomes) if o["outcome"] != "verified"]
    assert not failures, f"{len(failures)} of {len(valid)} botocore-signed requests refused, e.g. {failures[:3]}"

    outcomes = run_checks(changed)
    accepted = [(label, line["path"], line["query"]) for (label, line), o in zip(labels, outcomes)
                if o["outcome"] != "refused"]
    assert not accepted, f"{len(accepted)} of {len(changed)} changed requests accepted, e.g. {accepted[:5]}"
    kinds = {label.split()[0] for label, _ in labels}
    assert kinds >= {"method", "path", "query", "body", "header", "signature"}
    assert len(changed) > 5 * REQUESTS


def test_scope_host_and_payload_rules():
    """The rules that do not depend on the signature's bytes, each refused with its reason."""
    now = time.time()

    def signed(url="http://127.0.0.1:8443/things", body=b"", region="us-east-1", service="iot", headers=None,
               presign=None):
        request = AWSRequest(method="POST" if body else "GET", url=url, data=body, headers=headers or {})
        credentials = Credentials(KEY, SECRET)
        if presign is not None:
            SigV4QueryAuth(credentials, service, region, expires=presign).add_auth(request)
        else:
            SigV4Auth(credentials, service, region).add_auth(request)
        return as_line(request, now)

    base = signed()
    wrong_service = signed(service="iotdata")
    wrong_region = signed(region="eu-west-1")
    wrong_host = signed(url="http://evil.example:8443/things")
    unsigned_payload = signed(body=b"{}", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    streaming = signed(body=b"{}", headers={"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    declared = signed(body=b'{"a":1}', headers={"X-Amz-Content-SHA256": hashlib.sha256(b'{"a":1}').hexdigest()})
    replayed = json.loads(json.dumps(declared))
    replayed["body"] = base64.b64encode(b'{"a":2}').decode()
    # x-amz-content-sha256 added after signing, so not among the signed headers.
    unsigned_hash = signed(body=b'{"a":1}')
    unsigned_hash["headers"].append(["x-amz-content-sha256", hashlib.sha256(b'{"a":1}').hexdigest()])
    dotted = signed(url="http://127.0.0.1:8443/things/a/../b")
    presigned = signed(presign=60)
    expired = dict(presigned, now=now + 61)
    future = dict(presigned, now=now - 16 * 60)

    outcomes = run_checks([base, wrong_service, wrong_region, wrong_host, unsigned_payload, streaming, declared,
                           replayed, unsigned_hash, presigned, expired, future, dotted])
    assert [o["outcome"] for o in outcomes] == ["verified", "refused", "refused", "refused", "refused", "refused",
                                                "verified", "refused", "refused", "verified", "refused", "refused",
                                                "refused"]
    messages = [o.get("message", "") for o in outcomes]
    assert "scoped to correct service" in messages[1] and "'iotdata'" in messages[1]
    assert "scoped to a valid region" in messages[2] and "eu-west-1" in messages[2]
    assert "evil.example" in messages[3]
    assert "UNSIGNED-PAYLOAD" in messages[4] and "STREAMING" in messages[5]
    assert "does not match the SHA-256 of the body" in messages[7]
    assert "signed headers" in messages[8]
    assert "expired" in messages[10]
    assert "15 minutes" in messages[11]
    assert "'..' segments" in messages[12]

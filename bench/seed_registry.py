"""Fills a stopped Drover's drover.sqlite with N things, each with a certificate attached and a
policy on the certificate, in 1 000 thing groups (bench/registry-scale.sh).

Written straight into the records table, in the layout the registry reads (one JSON record per
thing and certificate, one link record per policy target and group member), because making a
million things through the API would take the benchmark's whole budget. The certificate PEMs
are a real device certificate's length (an EC P-256 certificate from Drover's CA is ~620
bytes), so that the memory per thing is what a real fleet costs.

    python3 bench/seed_registry.py DATA_DIR N [pem-inline]

Each certificate's PEM goes in a `certificate-pem` record of its own, as the registry keeps it
since 2026-12-04, with the certificate's `certificate-by-date` index record; `pem-inline` writes
the PEM inside the certificate's record instead, and no index record: the layout before, which a
registry of that time needs (and a newer one rewrites at its first start).
"""
import json
import sqlite3
import sys
import time
import uuid

data_dir, count = sys.argv[1], int(sys.argv[2])
pem_inline = len(sys.argv) > 3 and sys.argv[3] == "pem-inline"
db = sqlite3.connect(f"{data_dir}/drover.sqlite")
db.execute("PRAGMA journal_mode=WAL")
now = time.time()
pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(["A" * 64] * 8) + "\n" + "A" * 20 + "\n-----END CERTIFICATE-----\n"
policy_doc = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": ["arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"]},
    {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": ["arn:aws:iot:*:*:topic/dt/${iot:Connection.Thing.ThingName}/*"]},
    {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": ["arn:aws:iot:*:*:topicfilter/dt/${iot:Connection.Thing.ThingName}/*"]}]})


def dumps(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


rows = []
rows.append(("policy", "seed-device", dumps({
    "name": "seed-device", "defaultVersion": 1, "versions": [{"id": 1, "document": policy_doc, "createdAt": now}],
    "nextVersion": 2, "createdAt": now, "modifiedAt": now})))
for g in range(1000):
    rows.append(("thing-group", f"seed-group-{g}", dumps({
        "name": f"seed-group-{g}", "id": str(uuid.uuid4()), "attributes": {}, "version": 1, "createdAt": now})))
db.executemany("INSERT OR REPLACE INTO record (kind, key, value) VALUES (?, ?, ?)", rows)
batch = []
for i in range(count):
    name = f"seed-{i:07d}"
    cert = f"{i:064x}"
    batch.append(("thing", name, dumps({"name": name, "id": str(uuid.uuid4()), "attributes": {"model": "m" + str(i % 7)},
                                        "version": 1, "createdAt": now})))
    certificate = {"id": cert, "status": "ACTIVE", "subject": f"CN={name}", "commonName": name,
                   "notBefore": now - 60, "notAfter": now + 86400 * 365, "createdAt": now, "modifiedAt": now, "mode": "SNI_ONLY"}
    if pem_inline:
        certificate["pem"] = pem
    else:
        batch.append(("certificate-pem", cert, dumps({"pem": pem})))
        # The creation-order index that ListCertificates pages through (since 2026-12-04, later).
        batch.append(("certificate-by-date", "%020.6f" % now + cert, b"{}"))
    batch.append(("certificate", cert, dumps(certificate)))
    batch.append(("thing-principals", name, dumps([cert])))
    batch.append(("policy-target", f"seed-device/cert/{cert}", b"{}"))
    batch.append(("group-member", f"seed-group-{i % 1000}/{name}", b"{}"))
    if len(batch) >= 50_000:
        db.executemany("INSERT OR REPLACE INTO record (kind, key, value) VALUES (?, ?, ?)", batch)
        batch = []
db.executemany("INSERT OR REPLACE INTO record (kind, key, value) VALUES (?, ?, ?)", batch)
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
print(f"seeded {count} things")

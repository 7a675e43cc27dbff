"""Listing pages against a running server (bench/registry-scale.sh): ListCertificates and
ListThings, 250 a page, PAGES pages each in turn from the first (so the later ones start at a
marker), each page timed on its own. Prints `certificates_ms=MEDIAN/MAX things_ms=MEDIAN/MAX`.
A page's cost should not grow with the registry.

    python3 bench/list_probe.py DATA_DIR HTTP_PORT PAGES
"""
import configparser
import statistics
import sys
import time

import boto3

data, http, pages = sys.argv[1], sys.argv[2], int(sys.argv[3])
cred = configparser.ConfigParser()
cred.read(f"{data}/admin-credentials")
iot = boto3.client("iot", endpoint_url=f"http://127.0.0.1:{http}", region_name="us-east-1",
                   aws_access_key_id=cred["default"]["aws_access_key_id"],
                   aws_secret_access_key=cred["default"]["aws_secret_access_key"])


def timed(call, field, marker_field):
    times, marker = [], None
    for _ in range(pages):
        started = time.perf_counter()
        page = call(**({marker_field: marker} if marker else {}))
        times.append((time.perf_counter() - started) * 1000)
        if not page[field]:
            raise SystemExit(f"an empty page of {field}")
        marker = page.get("nextMarker") or page.get("nextToken")
        if not marker:
            break
    return f"{statistics.median(times):.1f}/{max(times):.1f}"


certificates = timed(lambda **kw: iot.list_certificates(pageSize=250, **kw), "certificates", "marker")
things = timed(lambda **kw: iot.list_things(maxResults=250, **kw), "things", "nextToken")
print(f"certificates_ms={certificates} things_ms={things}")

#!/usr/bin/env bash
# Prepare the end-to-end test environment (idempotent).
#  - Debian mosquitto + mosquitto-clients (mosquitto_pub/mosquitto_sub, and the
#    reference broker used as an optional developer aid).
#  - Python venv at <project>/.venv with paho-mqtt 2.x, pytest, boto3, the AWS CLI and the
#    AWS IoT Device SDK v2 (awsiotsdk).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

apt_retry() {
    # apt may be locked by another process: retry for a bounded time.
    local tries=0
    until "$@"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 20 ]; then
            echo "setup-test-env: '$*' failed after $tries tries" >&2
            return 1
        fi
        echo "setup-test-env: apt busy or failed, retrying in 6 s ($tries/20)" >&2
        sleep 6
    done
}

if ! command -v mosquitto_pub >/dev/null 2>&1 \
    || ! command -v mosquitto_sub >/dev/null 2>&1 \
    || ! { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }; then
    export DEBIAN_FRONTEND=noninteractive
    apt_retry $SUDO apt-get update
    apt_retry $SUDO apt-get install -y mosquitto mosquitto-clients
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi

if ! .venv/bin/python -c 'import paho.mqtt, pytest, boto3, awscli, awsiot, sys; import importlib.metadata as m; sys.exit(0 if m.version("paho-mqtt").startswith("2.") else 1)' >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q 'paho-mqtt>=2,<3' pytest boto3 awscli awsiotsdk
fi

echo "setup-test-env: ok ($(.venv/bin/python -c 'import importlib.metadata as m; print("paho-mqtt", m.version("paho-mqtt"), "pytest", m.version("pytest"), "boto3", m.version("boto3"), "awsiotsdk", m.version("awsiotsdk"))'))"

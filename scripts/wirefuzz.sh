#!/usr/bin/env bash
# Wire-level fuzzer for Drover's MQTT listeners (TCP, WebSocket, mutual TLS). See scripts/wirefuzz.py.
#   scripts/wirefuzz.sh [--duration 60] [--clients 32] [--seed N] [--round-seconds 5] [--out DIR]
#   scripts/wirefuzz.sh --host 127.0.0.1 --port 1883 --http-port 8080 [--mqtts-port 8883 --data-dir D]
#   scripts/wirefuzz.sh --replay wirefuzz-out/crash-.../reproducer.json
# Uses the project's .venv Python when there is one (botocore signs the API calls then; without it
# a built-in SigV4 signer does). Does not build: DROVER_BIN or --binary picks the server binary.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
exec "$PY" "$ROOT/scripts/wirefuzz.py" "$@"

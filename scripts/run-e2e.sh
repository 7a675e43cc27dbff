#!/usr/bin/env bash
# Run the end-to-end suite against the built server binary.
#   scripts/run-e2e.sh [pytest args...]
# DROVER_BIN overrides the binary (default .build/debug/drover). Does not build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup-test-env.sh
BIN="${DROVER_BIN:-$ROOT/.build/debug/drover}"
if [ "${DROVER_E2E_MOSQUITTO:-}" != "1" ] && [ ! -x "$BIN" ]; then
    echo "run-e2e: no server binary at $BIN (build it first, or set DROVER_BIN)" >&2
    exit 1
fi
exec .venv/bin/python -m pytest Tests/e2e -q "$@"

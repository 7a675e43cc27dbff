#!/usr/bin/env bash
# Runs every test: the Swift unit tests (codec, broker, app, and the storage contract on SQLite
# and on PostgreSQL) and the end-to-end suite, which starts the real `drover serve` and drives it
# with mosquitto_pub/sub, paho-mqtt, boto3 and the AWS IoT Device SDK: once with the control
# plane on SQLite, and once on PostgreSQL (DROVER_SKIP_POSTGRES_E2E=1 skips that second pass).
# Installs what is missing first (Debian packages, a Python virtualenv under .venv), and starts
# a private PostgreSQL server on a free port in a temporary directory, stopped at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# python3 -m venv needs Debian's python3-venv on a bare system python.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
fi
scripts/install-build-deps.sh
scripts/setup-test-env.sh

echo "== a private PostgreSQL server"
PG_DIR="$(mktemp -d /tmp/drover-test-pg.XXXXXX)"
trap 'scripts/postgres.sh stop "$PG_DIR"' EXIT
PG_URL="$(scripts/postgres.sh start "$PG_DIR")"
echo "PostgreSQL at $PG_URL"

echo "== swift build"
swift build --build-tests
echo "== swift test (unit tests; the storage contract on SQLite and PostgreSQL)"
DROVER_TEST_POSTGRES_URL="$PG_URL" DROVER_TEST_REQUIRE_POSTGRES=1 swift test --skip-build
echo "== end-to-end tests against .build/debug/drover, control plane on SQLite"
DROVER_BIN="$ROOT/.build/debug/drover" DROVER_E2E_POSTGRES_URL="$PG_URL" \
    .venv/bin/python -m pytest Tests/e2e -q -p no:cacheprovider
if [ "${DROVER_SKIP_POSTGRES_E2E:-0}" != 1 ]; then
    echo "== end-to-end tests, control plane on PostgreSQL"
    DROVER_BIN="$ROOT/.build/debug/drover" DROVER_E2E_POSTGRES_URL="$PG_URL" DROVER_E2E_BACKEND=postgres \
        .venv/bin/python -m pytest Tests/e2e -q -p no:cacheprovider
fi
# Bounded fuzzing: the wire-level fuzzer against a server of its own, then each libFuzzer target
# (a build of its own with AddressSanitizer). DROVER_SKIP_FUZZ=1 skips both.
if [ "${DROVER_SKIP_FUZZ:-0}" != 1 ]; then
    echo "== wire-level fuzzing (${DROVER_WIREFUZZ_SECONDS:-30} s)"
    scripts/wirefuzz.sh --binary "$ROOT/.build/debug/drover" --duration "${DROVER_WIREFUZZ_SECONDS:-30}" \
        --clients 16 --out "$ROOT/.build/wirefuzz-out"
    echo "== libFuzzer targets (${DROVER_FUZZ_SECONDS:-10} s each)"
    scripts/fuzz.sh "${DROVER_FUZZ_SECONDS:-10}"
fi

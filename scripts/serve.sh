#!/usr/bin/env bash
# Builds Drover (release) and runs `drover serve` with the arguments given, on the embedded
# SQLite default. Installs what the build needs first: Debian's libsqlite3-dev.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/install-build-deps.sh
exec swift run -c release drover serve "$@"

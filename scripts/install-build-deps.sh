#!/usr/bin/env bash
# What building Drover needs beyond the Swift toolchain: SQLite's headers (GRDB links the system
# SQLite). Idempotent: does nothing when they are there.
set -euo pipefail
if [ ! -f /usr/include/sqlite3.h ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libsqlite3-dev
fi

#!/usr/bin/env bash
# A private PostgreSQL server for the tests: `scripts/postgres.sh start DIR` installs Debian's
# postgresql if it is missing, makes a cluster in DIR (trust authentication, loopback only) on a
# free port, starts it, and prints its URL (postgres://drover@127.0.0.1:PORT/postgres);
# `scripts/postgres.sh stop DIR` stops it. PostgreSQL refuses to run as root: as root, the
# cluster belongs to the `postgres` user that the package makes.
set -euo pipefail
command="${1:?start DIR or stop DIR}"
dir="${2:?a directory for the cluster}"

bindir() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    if [ -z "$found" ] && command -v initdb >/dev/null; then found="$(dirname "$(readlink -f "$(command -v initdb)")")"; fi
    echo "$found"
}

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    if [ -z "$(bindir)" ]; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    fi
    bin="$(bindir)"
    [ -x "$bin/initdb" ] || { echo "postgres.sh: no initdb after installing postgresql" >&2; exit 1; }
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir"
        runuser -u postgres -- test -w "$dir" \
            || { echo "postgres.sh: the postgres user cannot reach $dir (a parent directory is closed to it)" >&2; exit 1; }
    fi
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    as_owner "$bin/initdb" -D "$dir/data" -U drover --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    # Tuned for tests on a small machine; fsync stays on, as in production.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 -c shared_buffers=128MB" \
        start >&2 || { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgres://drover@127.0.0.1:$port/postgres"
    ;;
stop)
    bin="$(bindir)"
    if [ -f "$dir/data/postmaster.pid" ]; then as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true; fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: scripts/postgres.sh start|stop DIR" >&2
    exit 2
    ;;
esac

"""`storage.backend: postgres`, the parts of it that are not the same on SQLite: what a wrong
setting says, that a password stays out of the logs, that a database a newer Drover migrated
is refused, and that the control plane survives a restart and `kill -9` in PostgreSQL. (The whole
end-to-end suite also runs with PostgreSQL as the backend: DROVER_E2E_BACKEND=postgres.)
"""

from __future__ import annotations

import os
import subprocess

import pytest

import aws
import conftest as e2e
from test_durability import DurableServer

pytestmark = pytest.mark.skipif(not e2e.POSTGRES_URL, reason="needs DROVER_E2E_POSTGRES_URL (scripts/test.sh starts a server)")


def serve_fails(tmp_path, **env) -> str:
    """Runs `drover serve` with `env`, expects it to stop at once, and returns what it said."""
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([str(e2e.drover_bin()), "serve", "--data-dir", str(data), "--mqtt-port", "0",
                             "--http-port", "0", "--https-port", "0", "--mqtts-port", "0"],
                            capture_output=True, text=True, timeout=60,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("DROVER_")},
                                 "DROVER_CREDENTIALS_PORT": "0", **env})
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_wrong_postgres_settings_stop_the_start_with_a_message_that_says_what_to_fix(tmp_path):
    output = serve_fails(tmp_path, DROVER_STORAGE_BACKEND="postgres")
    assert "storage.url" in output, output
    output = serve_fails(tmp_path, DROVER_STORAGE_BACKEND="postgres", DROVER_STORAGE_URL="postgres://127.0.0.1/x")
    assert "names no user" in output, output
    output = serve_fails(tmp_path, DROVER_STORAGE_BACKEND="postgres",
                         DROVER_STORAGE_URL="postgres://u@127.0.0.1/x?sslmode=allow")
    assert "sslmode must be disable or require" in output, output
    # Nothing listens on port 9: the message names the database, not the password.
    output = serve_fails(tmp_path, DROVER_STORAGE_BACKEND="postgres",
                         DROVER_STORAGE_URL="postgres://drover:s3cret-pw@127.0.0.1:9/drover?connect_timeout=2")
    assert "postgres://drover@127.0.0.1:9/drover" in output, output
    assert "s3cret-pw" not in output, output
    # A password file others can read is refused.
    secret = tmp_path / "password"
    secret.write_text("pw\n")
    secret.chmod(0o644)
    output = serve_fails(tmp_path, DROVER_STORAGE_BACKEND="postgres", DROVER_STORAGE_URL=e2e.new_postgres_database(),
                         DROVER_STORAGE_PASSWORD_FILE=str(secret))
    assert "password" in output and ("0600" in output or "permissions" in output or "mode" in output), output


def test_a_database_migrated_by_a_newer_drover_is_refused(tmp_path):
    url = e2e.new_postgres_database()
    srv = DurableServer(tmp_path / "a", {"DROVER_STORAGE_BACKEND": "postgres", "DROVER_STORAGE_URL": url})
    srv.start()
    srv.stop()
    made = subprocess.run(["psql", url, "-qc", "INSERT INTO drover_migration VALUES ('v999-from-the-future', 0)"],
                          capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    output = serve_fails(tmp_path / "b", DROVER_STORAGE_BACKEND="postgres", DROVER_STORAGE_URL=url)
    assert "v999-from-the-future" in output and "newer" in output, output


def test_the_control_plane_in_postgres_survives_kill9_and_a_restart(tmp_path):
    url = e2e.new_postgres_database()
    srv = DurableServer(tmp_path, {"DROVER_STORAGE_BACKEND": "postgres", "DROVER_STORAGE_URL": url})
    srv.start()
    try:
        iot = aws.iot(srv)
        for i in range(20):
            iot.create_thing(thingName=f"pg_kept_{i}", attributePayload={"attributes": {"n": str(i)}})
        iot.update_thing(thingName="pg_kept_3", attributePayload={"attributes": {"n": "changed"}})
        srv.kill9()
        srv.start()
        iot = aws.iot(srv)
        names = aws.all_thing_names(srv)
        assert {f"pg_kept_{i}" for i in range(20)} <= names
        assert iot.describe_thing(thingName="pg_kept_3")["attributes"] == {"n": "changed"}
        assert iot.describe_thing(thingName="pg_kept_3")["version"] == 2
        # The audit log is in PostgreSQL too.
        rows = subprocess.run(["psql", url, "-tAc", "SELECT count(*) FROM drover_audit WHERE operation = 'CreateThing'"],
                              capture_output=True, text=True, timeout=30)
        assert int(rows.stdout.strip()) >= 20, rows.stdout + rows.stderr
        # No control-plane file in the data directory: only the broker's own.
        assert not (srv.data_dir / "drover.sqlite").exists()
        assert (srv.data_dir / "broker.sqlite").exists()
    finally:
        srv.stop()

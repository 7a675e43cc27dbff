"""Fixtures that run the real `drover serve` binary for the end-to-end tests.

Environment:
  DROVER_BIN             path to the server binary (default <project>/.build/debug/drover)
  DROVER_E2E_MOSQUITTO=1 developer aid only: run the Debian `mosquitto` broker
                         instead of Drover, to check the *client side* of the tests
                         against a reference broker. Drover-only checks (/health,
                         /metrics) are skipped in that mode, and some
                         Drover-specific expectations are known to differ.
  DROVER_E2E_POSTGRES_URL  a PostgreSQL server (postgres://USER@HOST:PORT/postgres) on
                         which the tests may make databases; scripts/test.sh starts one.
  DROVER_E2E_BACKEND=postgres  every server that would use SQLite for its control plane
                         uses a PostgreSQL database of its own instead (kept across its
                         restarts); tests of drover.sqlite itself are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
USE_MOSQUITTO = os.environ.get("DROVER_E2E_MOSQUITTO") == "1"
POSTGRES_URL = os.environ.get("DROVER_E2E_POSTGRES_URL")
BACKEND = os.environ.get("DROVER_E2E_BACKEND", "sqlite")
if BACKEND == "postgres" and not POSTGRES_URL:
    raise RuntimeError("DROVER_E2E_BACKEND=postgres needs DROVER_E2E_POSTGRES_URL")


def postgres_database(name: str) -> str:
    """Makes database `name` on the test server (if it is not there) and returns its URL."""
    assert POSTGRES_URL, "DROVER_E2E_POSTGRES_URL is not set"
    found = subprocess.run(["psql", POSTGRES_URL, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                           capture_output=True, text=True, timeout=30)
    assert found.returncode == 0, found.stderr
    if found.stdout.strip() != "1":
        made = subprocess.run(["psql", POSTGRES_URL, "-qc", f"CREATE DATABASE {name}"],
                              capture_output=True, text=True, timeout=30)
        assert made.returncode == 0, made.stderr
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


def new_postgres_database() -> str:
    return postgres_database("drover_e2e_" + os.urandom(6).hex())

# Servers currently in use by the running test (their log tail is attached to
# the report of a failing test).
_ACTIVE: list["DroverServer"] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def drover_bin() -> Path:
    return Path(os.environ.get("DROVER_BIN", PROJECT_ROOT / ".build" / "debug" / "drover"))


_METRIC_LINE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?\s*$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_prometheus(text: str) -> dict:
    """Prometheus text format -> {(name, frozenset(labels.items())): value}."""
    out: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            raise AssertionError(f"unparseable /metrics line: {line!r}")
        labels = {}
        raw = m.group("labels")
        if raw:
            pos = 0
            while pos < len(raw):
                lm = _LABEL.match(raw, pos)
                if not lm:
                    raise AssertionError(f"unparseable labels in /metrics line: {line!r}")
                labels[lm.group(1)] = (lm.group(2).replace('\\"', '"')
                                       .replace("\\n", "\n").replace("\\\\", "\\"))
                pos = lm.end()
        out[(m.group("name"), frozenset(labels.items()))] = float(m.group("value"))
    return out


def metric_sum(metrics: dict, name: str, **labels) -> float:
    """Sum of all samples of `name` whose labels include `labels`."""
    total = 0.0
    want = {k: str(v) for k, v in labels.items()}
    for (n, lbls), v in metrics.items():
        if n != name:
            continue
        d = dict(lbls)
        if all(d.get(k) == v2 for k, v2 in want.items()):
            total += v
    return total


def metric_names(metrics: dict) -> set[str]:
    return {n for (n, _) in metrics}


class DroverServer:
    def __init__(self, workdir: Path, env: dict[str, str] | None = None):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "drover.log"
        self.env_extra = {k: str(v) for k, v in (env or {}).items()}
        self.proc: subprocess.Popen | None = None
        self.mqtt_port = 0
        self.http_port = 0
        self.https_port = 0
        self.expect_alive = True
        self.exit_code: int | None = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "DroverServer":
        last_error = ""
        for _attempt in range(3):  # a picked free port can be taken meanwhile: retry
            self.mqtt_port, self.http_port = free_port(), free_port()
            while self.http_port == self.mqtt_port:
                self.http_port = free_port()
            self.https_port = free_port()
            while self.https_port in (self.mqtt_port, self.http_port):
                self.https_port = free_port()
            # DROVER_E2E_TLS=1: also the mutual-TLS listener, on a port of its own.
            self.mqtts_port = 0
            if self.env_extra.get("DROVER_E2E_TLS") == "1":
                while self.mqtts_port in (0, self.mqtt_port, self.http_port):
                    self.mqtts_port = free_port()
            self._spawn()
            ok, last_error = self._wait_ready()
            if ok:
                return self
            self._kill_now()
            if "address already in use" not in self.log_tail().lower():
                break
        raise AssertionError(f"server did not become ready: {last_error}\n--- log tail ---\n{self.log_tail()}")

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Only the settings the test asks for: drop DROVER_* leaking in from the caller's shell.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DROVER_") or k.startswith("DROVER_E2E_") or k == "DROVER_BIN"}
        # Loopback only, whatever the defaults are (a test may still override these).
        env["DROVER_MQTT_BIND"] = HOST
        env["DROVER_HTTP_BIND"] = HOST
        env["DROVER_MQTTS_BIND"] = HOST
        env["DROVER_HTTPS_BIND"] = HOST
        env["DROVER_CREDENTIALS_BIND"] = HOST
        # The credentials provider only where a test asks for it (on a port of its own).
        env["DROVER_CREDENTIALS_PORT"] = "0"
        env.update(self.env_extra)
        # DROVER_E2E_BACKEND=postgres: the control plane in a database of this server's own.
        if (BACKEND == "postgres" and env.get("DROVER_STORAGE_BACKEND", "sqlite") == "sqlite"
                and "DROVER_STORAGE_DATABASE" not in env and env.get("DROVER_E2E_SQLITE_ONLY") != "1"):
            marker = self.workdir / "postgres-database"
            if not marker.exists():
                marker.write_text("drover_e2e_" + os.urandom(6).hex())
            env["DROVER_STORAGE_BACKEND"] = "postgres"
            env["DROVER_STORAGE_URL"] = postgres_database(marker.read_text().strip())
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "ab")
        if USE_MOSQUITTO:
            args = self._mosquitto_args()
        else:
            binary = drover_bin()
            if not binary.exists():
                raise AssertionError(f"Drover binary not found at {binary}: build it (swift build) "
                                     f"or set DROVER_BIN")
            args = [str(binary), "serve", "--data-dir", str(self.data_dir),
                    "--mqtt-port", str(self.mqtt_port), "--mqtts-port", str(getattr(self, "mqtts_port", 0)),
                    "--http-port", str(self.http_port), "--https-port", str(self.https_port)]
        self._log.write(f"### starting: {' '.join(args)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=str(self.workdir))

    def _mosquitto_args(self) -> list[str]:
        """Developer aid: an equivalent Mosquitto configuration."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        e = self.env_extra
        lines = [
            "per_listener_settings false",
            "allow_anonymous true",
            "persistence false",
            f"max_packet_size {e.get('DROVER_LIMITS_MAX_PACKET_SIZE', '1048576')}",
            f"max_queued_messages {e.get('DROVER_LIMITS_MAX_QUEUED_MESSAGES', '1000')}",
            f"max_keepalive {e.get('DROVER_LIMITS_MAX_KEEP_ALIVE', '3600')}",
            f"max_inflight_messages {e.get('DROVER_LIMITS_RECEIVE_MAXIMUM', '100')}",
            "log_dest stderr",
            "log_type all",
            f"listener {self.mqtt_port} {HOST}",
            f"max_topic_alias {e.get('DROVER_LIMITS_TOPIC_ALIAS_MAXIMUM', '64')}",
        ]
        if "DROVER_LIMITS_MAX_CONNECTIONS" in e:
            lines.append(f"max_connections {e['DROVER_LIMITS_MAX_CONNECTIONS']}")
        lines += [f"listener {self.http_port} {HOST}", "protocol websockets"]
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return [exe, "-c", str(conf)]

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + READY_TIMEOUT
        err = "timeout"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"process exited with {self.proc.returncode}"
            try:
                with socket.create_connection((HOST, self.mqtt_port), timeout=1):
                    pass
                if USE_MOSQUITTO:
                    with socket.create_connection((HOST, self.http_port), timeout=1):
                        pass
                    return True, ""
                with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/health", timeout=2) as r:
                    if r.status != 200:
                        err = f"/health returned {r.status}"
                        raise OSError(err)
                # The HTTPS listener can come up just after the plain one.
                if getattr(self, "https_port", 0):
                    with socket.create_connection((HOST, self.https_port), timeout=1):
                        pass
                return True, ""
            except (OSError, urllib.error.URLError) as ex:
                err = repr(ex)
            time.sleep(0.1)
        return False, f"not ready within {READY_TIMEOUT}s ({err})"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Only our own PID. Returns exit code."""
        self.expect_alive = False
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_now()
        self.exit_code = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.exit_code

    def _kill_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    # -- inspection ----------------------------------------------------------------
    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def metrics_text(self) -> str:
        if USE_MOSQUITTO:
            pytest.skip("/metrics is Drover-only (DROVER_E2E_MOSQUITTO=1)")
        with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/metrics", timeout=5) as r:
            assert r.status == 200, f"/metrics returned {r.status}"
            return r.read().decode("utf-8")

    def metrics(self) -> dict:
        return parse_prometheus(self.metrics_text())

    def metric(self, name: str, **labels) -> float:
        return metric_sum(self.metrics(), name, **labels)

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("VmRSS not found")

    def describe(self) -> str:
        return f"pid {self.proc.pid if self.proc else '?'} mqtt {self.mqtt_port} http {self.http_port}"


def _start(tmp_path_factory, env: dict) -> DroverServer:
    srv = DroverServer(tmp_path_factory.mktemp("drover"), env)
    _ACTIVE.append(srv)
    try:
        srv.start()
    except BaseException:
        srv.stop()
        _ACTIVE.remove(srv)  # its log tail is in the error message already
        raise
    return srv


def _finish(srv: DroverServer) -> None:
    srv.stop()
    if srv in _ACTIVE:
        _ACTIVE.remove(srv)


@pytest.fixture(scope="module")
def drover(tmp_path_factory):
    """A Drover with default settings shared by the tests of one module."""
    srv = _start(tmp_path_factory, {})
    yield srv
    died = srv.expect_alive and not srv.alive()
    _finish(srv)
    if died:
        pytest.fail(f"drover ({srv.describe()}) died during the module, exit code {srv.exit_code}\n"
                    f"{srv.log_tail()}")


def _factory_fixture(tmp_path_factory):
    started: list[DroverServer] = []

    def factory(**env) -> DroverServer:
        srv = _start(tmp_path_factory, env)
        started.append(srv)
        return srv

    yield factory
    dead = [s for s in started if s.expect_alive and not s.alive()]
    for srv in started:
        _finish(srv)
    if dead:
        s = dead[0]
        pytest.fail(f"server ({s.describe()}) died, exit code {s.exit_code}\n{s.log_tail()}")


@pytest.fixture
def drover_factory(tmp_path_factory):
    """Start servers with extra environment: `drover_factory(DROVER_LIMITS_X=1)`.

    Function-scoped: every server started is stopped after the test.
    """
    yield from _factory_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def drover_module_factory(tmp_path_factory):
    """Like drover_factory, but the servers live for the whole module."""
    yield from _factory_fixture(tmp_path_factory)


@pytest.fixture(autouse=True)
def _server_must_survive():
    """Fail a test after which a server that should be running has died."""
    before = [s for s in _ACTIVE if s.expect_alive]
    yield
    dead = [s for s in before + _ACTIVE if s.expect_alive and s.proc is not None and not s.alive()]
    if dead:
        s = dead[0]
        s.expect_alive = False
        pytest.fail(f"server ({s.describe()}) died, exit code {s.proc.returncode}\n{s.log_tail()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        for srv in list(_ACTIVE):
            rep.sections.append((f"server log tail ({srv.describe()}, {srv.log_path})", srv.log_tail()))


@pytest.fixture
def clients():
    """Collects Paho/MosqSub/RawClient objects and cleans them up after the test."""
    made: list = []
    yield made
    for c in reversed(made):
        for meth in ("close", "stop"):
            fn = getattr(c, meth, None)
            if fn is not None:
                try:
                    fn()
                except Exception:
                    pass
                break


def pytest_report_header(config):
    if USE_MOSQUITTO:
        return "drover e2e: DEVELOPER AID MODE — running against Debian mosquitto, not Drover"
    return f"drover e2e: binary {drover_bin()}, control plane on {BACKEND}"

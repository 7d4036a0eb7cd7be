"""`acoflow up` itself under a load: a service killed with -9 is started again by the supervisor, then the
broker (on its log: nothing to load again), then the embedded PostgreSQL (the services carry on without a restart
of their own); the money invariant holds, and SIGTERM stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from acoflow.stack import Stack, free_port
from shared.settings import Settings
from tests.faults.harness import Feed, create_contract, invariant, publish_in_background, record, wait_for_total

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]


def _status(state: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return data


def _wait(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def _healthy(status: dict[str, Any]) -> bool:
    try:
        return all(httpx.get(s["health"], timeout=2).status_code == 200 for s in status["services"].values())
    except httpx.HTTPError:
        return False


def _restarted(state: Path, name: str, old_pid: int) -> dict[str, Any] | None:
    status = _status(state)
    if status is None:
        return None
    entry = status[name] if name in ("broker", "database") else status["services"][name]
    if entry["pid"] == old_pid or not psutil.pid_exists(entry["pid"]) or entry["restarts"] < 1:
        return None
    return status if _healthy(status) else None


def test_acoflow_up_restarts_a_killed_service_broker_and_database(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ACOFLOW_DATABASE_URL")},
        "ACOFLOW_STATE_DIR": str(state),
        "ACOFLOW_RESEND_AFTER_S": "3",
    }
    for name in ("contracts", "claims_ingest", "settlement", "notifications"):
        env[f"ACOFLOW_{name.upper()}_PORT"] = str(free_port())
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen([sys.executable, "-m", "acoflow.cli", "up"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        status = _wait(lambda: (s := _status(state)) and _healthy(s) and s, 120, "acoflow up healthy")
        stack = Stack(Settings(state_dir=state), state)
        stack.bootstrap = status["broker"]["bootstrap"]
        stack.database_url = status["database"]["url"]  # the embedded server's (its socket, no password)
        stack.ports = {name: int(s["url"].rsplit(":", 1)[1]) for name, s in status["services"].items()}

        feed = Feed("SUPERVISED", members=200, lines=3000, seed=9)
        create_contract(stack, feed)
        thread = publish_in_background(stack.bootstrap, feed.items, per_second=1500)
        back: dict[str, float] = {}
        for name in ("settlement", "claims_ingest", "contracts", "notifications"):
            time.sleep(0.5)
            old = status["services"][name]["pid"]
            os.kill(old, signal.SIGKILL)
            started = time.monotonic()
            status = _wait(lambda n=name, o=old: _restarted(state, n, o), 60, f"{name} restarted by the supervisor")
            back[name] = time.monotonic() - started
        thread.join(120)
        wait_for_total(stack, feed, seconds=120)

        old = status["broker"]["pid"]
        os.kill(old, signal.SIGKILL)
        started = time.monotonic()
        _wait(lambda: _restarted(state, "broker", old), 60, "broker restarted by the supervisor")
        broker_back = time.monotonic() - started
        more = Feed("SUPERVISED-PG", members=200, lines=3000, seed=19)
        create_contract(stack, more)
        thread = publish_in_background(stack.bootstrap, more.items, per_second=1500)
        time.sleep(1.0)
        old = status["database"]["pid"]
        os.kill(old, signal.SIGKILL)  # the postmaster, mid-load
        started = time.monotonic()
        _wait(lambda: _restarted(state, "database", old), 90, "database restarted by the supervisor")
        database_back = time.monotonic() - started
        thread.join(120)
        wait_for_total(stack, more, seconds=180)
        observed = f"{invariant(stack, feed)}; {invariant(stack, more)}"
        assert up.poll() is None, "the supervisor stopped"
        shown = subprocess.run(
            [sys.executable, "-m", "acoflow.cli", "status", "--json"], env=env, cwd=ROOT, capture_output=True, text=True
        )
        restarts = json.loads(shown.stdout)
        # One restart each: the services came back from the database's loss without a restart of their own.
        assert all(s["restarts"] == 1 for s in restarts["services"].values()), restarts
        assert restarts["broker"]["restarts"] == 1 and restarts["database"]["restarts"] == 1 and restarts["running"]
        record(
            "kill -9 under `acoflow up` (each service, the broker, the embedded PostgreSQL)",
            "3,000 lines at 1,500/s; settlement, claims_ingest, contracts and notifications killed in turn while they"
            " flow; once settled, the broker killed; then 3,000 more lines and the PostgreSQL postmaster killed mid-load",
            "the supervisor restarted each ("
            + ", ".join(f"{n} {t:.1f} s to healthy" for n, t in back.items())
            + f"), the broker on its log ({broker_back:.1f} s, nothing loaded again) and the database"
            f" ({database_back:.1f} s to all healthy, no service restarted); `acoflow status`: one restart each; {observed}",
        )
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            code = up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-2000:]
    assert _status(state) is None  # stopped: status file removed

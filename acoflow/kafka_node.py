"""Apache Kafka as one KRaft node (broker and controller in one JVM) for the embedded stack, the tests and the
benchmark: the jars deploy/kafka/pom.xml names, resolved once by Maven into the Python environment, and a node
whose log lives in a folder of its own, so a restart keeps every record."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J = ROOT / "deploy" / "kafka" / "log4j2.properties"
# A small heap: one node with a few dozen partitions and a day of records in the page cache, not in the heap.
# The quick compiler only: the optimizing one spent more CPU compiling in a node's first minutes of traffic than the
# node spent serving it, and pays that back only after minutes of steady traffic, which tests, demos and the bench
# never reach (docs/benchmarks.md). A long-running broker (docker-compose.yml) keeps the JVM's default.
JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


class KafkaUnavailable(RuntimeError):
    """No JDK or no Maven to resolve the broker with: says what to install."""


def kafka_version() -> str:
    """The broker's version, as the pom names it (docker-compose.yml runs the same; a test compares them)."""
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert found, f"{POM} names no kafka.version"
    return found.group(1)


def libs_dir() -> Path:
    """Where the broker's jars live: beside the Python environment that runs it (`make clean` removes both)."""
    return Path(sys.prefix) / "kafka" / "libs"


def resolve_jars() -> Path:
    """The broker's jars, resolved from Maven Central the first time (and again when the pom changes)."""
    libs = libs_dir()
    stamp = libs / ".pom.sha256"
    wanted = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return libs
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise KafkaUnavailable(f"{tool} is not installed: the broker needs a JDK 17+ and Maven (make install adds both)")
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    goal = ["dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(POM), *goal], check=True)
    stamp.write_text(wanted)
    return libs


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class KafkaNode:
    """One node in `home`: its server.properties, its log (`data/`) and what it prints (`broker.log`).

    `listener` is how clients reach it (PLAINTEXT, or SASL_SSL with `properties` saying how); `scram` gives the
    SCRAM-SHA-512 users the log is formatted with (a secured node's first users, its super user among them)."""

    home: Path
    port: int = 0
    controller_port: int = 0
    listener: str = "PLAINTEXT"
    properties: dict[str, str] = field(default_factory=dict)
    scram: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        return self.home / "broker.log"

    def server_properties(self) -> dict[str, str]:
        """The node's configuration: docker-compose.yml's broker settings, on loopback, with one node's replication."""
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"{self.listener}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"{self.listener}://127.0.0.1:{self.port}",
            "listener.security.protocol.map": f"{self.listener}:{self.listener},CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": self.listener,
            "log.dirs": str(self.data),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # One node: the first consumer of a group need not wait for others to join with it.
            "group.initial.rebalance.delay.ms": "0",
            # The controller appends a no-op record to the metadata log this often (default 500 ms) so brokers
            # can tell it is alive; this node's broker is in the same process, and the default was most of
            # what an idle node did.
            "metadata.max.idle.interval.ms": "5000",
            **self.properties,
        }

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        classpath = str(resolve_jars() / "*")
        return ["java", *JVM_OPTIONS, f"-Dlog4j2.configurationFile={LOG4J}", "-cp", classpath, main, *args]

    def _format(self, config: Path) -> None:
        """Format the log once: a node that has one keeps it (and its records) across restarts."""
        if (self.data / "meta.properties").exists():
            return
        cluster = "-"
        while cluster.startswith("-"):  # as Kafka's own ids: one starting with "-" would read as an option
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        users = [arg for user, pw in self.scram.items() for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={pw}]")]
        subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(config), *users),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self, timeout_s: float = 60) -> None:
        config = self._write_config()
        self._format(config)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(config)), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the broker exited with {self.proc.returncode}; see {self.log_path}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the broker did not listen within {timeout_s:.0f} s; see {self.log_path}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: what a crash does (the log keeps what reached the page cache, which is everything acknowledged)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def wipe(self) -> None:
        """Lose the log (a disk replaced): the next start formats a new, empty one."""
        shutil.rmtree(self.data, ignore_errors=True)

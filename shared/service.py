"""What every service process shares: its database pool, broker, producer and outbox relay; /health and
/metrics; start-up (migrations, topics) and an orderly stop. Entrypoints stay thin on top of this."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator

from shared.asyncapi import document as asyncapi_document
from shared.auth import ApiKeyMiddleware, Principal, bootstrap_key_id, key_hash, replica_lookup, replicate, requires
from shared.broker import FetchPace, batch_options, ensure_topics, make_broker, make_producer
from shared.confirmations import ConfirmedHop, unconfirmed
from shared.consumer import BatchConsumer, Parsed, Subscription
from shared.db import Conn, QueueVacuum, apply_migrations, create_pool
from shared.declaration import Declaration
from shared.events import API_KEY_CHANGED, RECEIPT, ApiKeyChanged
from shared.http import ServiceApp
from shared.logging import configure_logging, get_logger
from shared.loops import WorkLoop
from shared.metrics import REGISTRY
from shared.outbox import OutboxRelay
from shared.settings import Settings, get_settings
from shared.signing import EventKeys
from shared.topics import ALL_TOPICS, KEYS, TopicSpec
from shared.unit_of_work import UnitOfWork, UnitsOfWork

log = get_logger(__name__)
RESEND_BATCH = 200
KEY_REPLICA_MIGRATIONS = Path(__file__).parent / "migrations" / "key_replica"


class ServiceRuntime:
    """A service as its declaration states it (shared/declaration.py): wiring a subscription or a loop the
    declaration does not list is refused, and start-up refuses a declared one left unwired."""

    def __init__(self, declaration: Declaration, migrations: Path, settings: Settings | None = None) -> None:
        self.declaration = declaration
        self.name = name = declaration.name
        self.schema = name
        self.settings = settings or get_settings()
        self.migrations = migrations
        self.broker = make_broker(self.settings, name)
        self._producer: AIOKafkaProducer | None = None
        self._pool: asyncpg.Pool | None = None
        self._auth_pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        # Migrations shared by several services (applied after the service's own, recorded as "<dir>/<file>").
        self.extra_migrations: list[Path] = []
        # Run once after the migrations, before consuming or serving (e.g. registering a bootstrap key).
        self.on_start: list[Callable[[Conn], Coroutine[Any, Any, None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loops: list[WorkLoop] = []
        self._hops: list[ConfirmedHop] = []
        # Subscriptions to topics off the hot path, by topic, with their batch sizes: one consumer reads them all.
        self._cold: dict[str, tuple[BatchConsumer[Any], int]] = {}
        self._cold_wired = False
        # Every transaction that may publish runs as one of these: the relay is woken after a commit that did.
        self.units = UnitsOfWork(lambda: self.pool, self.schema, self.wake_relay)
        self.event_keys = EventKeys.from_settings(self.settings)
        # PostgreSQL settings for this service's connections, set by the service before start.
        self.db_session: dict[str, str] = {}

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool is not open yet")
        return self._pool

    def subscribe(self, sub: Subscription[Any]) -> BatchConsumer[Any]:
        """Wire a subscription once: its BatchConsumer (on this service's units of work) and the FastStream
        subscriber that hands it each batch. A hot topic's subscription has a consumer (and group) of its own;
        the others share one, "<service>.cold", which hands each its topic's records (`wire_subscriptions`)."""
        self._declared("consumes", sub.topic.name, {t.name for t in self.declaration.consumes})
        extra = sub.wakes

        def committed() -> None:
            if extra is not None:
                extra.wake()

        consumer: BatchConsumer[Any] = BatchConsumer(
            service=self.name,
            schema=self.schema,
            spec=sub.spec,
            topic=sub.topic,
            units=self.units,
            apply=sub.apply,
            on_committed=committed,
            reject=sub.reject,
            dedupe_by_id=sub.dedupe_by_id,
            receipt=sub.receipt,
            keys=self.event_keys,
        )
        if not sub.topic.hot:
            if sub.topic.name in self._cold:
                raise ValueError(f"{self.name}: {sub.topic.name} has a subscription already")
            self._cold[sub.topic.name] = (consumer, sub.max_records or self.settings.batch_max_records)
            return consumer
        group = self.name if sub.group is None else f"{self.name}.{sub.group}"
        subscriber = self.broker.subscriber(sub.topic.name, **batch_options(self.settings, group, sub.max_records))
        fetch = FetchPace(self.settings, subscriber, hot=True)

        @subscriber
        async def handle(records: list[Any]) -> None:
            fetch.batch()
            await consumer.handle(records)

        return consumer

    def wire_subscriptions(self) -> None:
        """One consumer for every topic off the claim-to-position path: each consumer heartbeats on its own
        whether or not anything arrives, which is most of what an idle service and broker spend.
        A batch may hold several topics: each subscription gets its own topic's records, in order. A failure
        leaves the whole batch uncommitted, and what was applied of it is deduplicated when it comes again."""
        if not self._cold or self._cold_wired:
            return
        self._cold_wired = True
        consumers = {topic: consumer for topic, (consumer, _) in self._cold.items()}
        most = max(limit for _, limit in self._cold.values())
        subscriber = self.broker.subscriber(*consumers, **batch_options(self.settings, f"{self.name}.cold", most))
        fetch = FetchPace(self.settings, subscriber, hot=False)

        @subscriber
        async def handle(records: list[Any]) -> None:
            fetch.batch()
            by_topic: dict[str, list[Any]] = {}
            for r in records:
                by_topic.setdefault(r.topic, []).append(r)
            for topic, batch in by_topic.items():
                await consumers[topic].handle(batch)

    def _declared(self, what: str, name: str, declared: set[str]) -> None:
        if name not in declared:
            raise ValueError(f"{self.name}: {name} is not in its declaration's {what} (services/{self.name}/app.py)")

    def check_wiring(self) -> None:
        """What the service wired is what it declares: every topic it consumes and every loop."""
        self.wire_subscriptions()
        wired = {name for _, names in self.consumer_groups() for name in names}
        declared = {t.name for t in self.declaration.consumes}
        loops = {loop.name.removeprefix(f"{self.name}-") for loop in self._loops}
        if wired != declared or loops != set(self.declaration.loops):
            raise RuntimeError(
                f"{self.name}: wired and declared differ: topics undeclared {sorted(wired - declared)}, unwired"
                f" {sorted(declared - wired)}; loops undeclared {sorted(loops - set(self.declaration.loops))}, unwired"
                f" {sorted(set(self.declaration.loops) - loops)}"
            )

    def work_loop(
        self,
        name: str,
        step: Callable[[UnitOfWork], Coroutine[Any, Any, int]],
        batch: int,
        queue: str | None = None,
        backlog_rest: float = 0.0,
        idle_s: float | None = None,
        pace_s: float = 0.0,
    ) -> WorkLoop:
        """A loop that runs `step` in a unit of work while it finds work (up to `batch` items a pass) and waits
        for a wake-up otherwise. It runs while the service does. `queue`: the table whose rows a pass deletes,
        one per item done, vacuumed as they add up (QueueVacuum); `backlog_rest`, `pace_s`: see WorkLoop."""
        self._declared("loops", name, set(self.declaration.loops))
        vacuum = QueueVacuum(lambda: self.pool, queue) if queue else None

        async def one_pass() -> int:
            async with self.units() as uow:
                done = await step(uow)
            if done and vacuum is not None:
                await vacuum.deleted(done)
            return done

        idle = self.settings.outbox_idle_sleep_s if idle_s is None else idle_s
        loop = WorkLoop(f"{self.name}-{name}", one_pass, batch, idle, backlog_rest, pace_s)
        self._loops.append(loop)
        return loop

    def loop(self, name: str, step: Callable[[], Coroutine[Any, Any, int]], batch: int, idle_s: float) -> WorkLoop:
        """A loop whose step manages its own transactions (webhook delivery posts outside any)."""
        self._declared("loops", name, set(self.declaration.loops))
        loop = WorkLoop(f"{self.name}-{name}", step, batch, idle_s)
        self._loops.append(loop)
        return loop

    def confirm_sends(self, hop: ConfirmedHop) -> None:
        """This service produces `hop`: keep what it sends until confirmed, read the receipts, and re-send what
        stays unconfirmed."""
        self._hops.append(hop)
        self.units.before_flush.append(hop.keep)
        self.subscribe(Subscription(RECEIPT, hop.receipts, hop.confirm, dedupe_by_id=False))
        after = self.settings.resend_after_s

        async def resend(uow: UnitOfWork) -> int:
            return await hop.resend_due(uow, after, RESEND_BATCH)

        self.work_loop(f"resend-{hop.topic.name}", resend, RESEND_BATCH, idle_s=max(after / 2, 0.5))

    def republishing(self, step: Callable[[UnitOfWork], Coroutine[Any, Any, int]]) -> None:
        """Run `step` (publish every current state of a full-state topic again) at start and every
        republish_interval_s."""
        self.work_loop("republish", step, 10**9, idle_s=self.settings.republish_interval_s)

    def secure(self, app: FastAPI, own_auth: tuple[str, ...] = ()) -> None:
        """Require API keys on every route but /health and /metrics: the keys the contracts service publishes
        on keys.v1 (kept in this schema's api_key_replica), and the install's bootstrap key from settings."""

        async def apply(uow: UnitOfWork, batch: list[Parsed[ApiKeyChanged]]) -> None:
            for p in batch:
                k = p.envelope.payload
                await replicate(uow.conn, self.schema, k.key_id, k.name, k.role, k.key_hash, k.revoked)

        self.extra_migrations.append(KEY_REPLICA_MIGRATIONS)
        self.subscribe(Subscription(API_KEY_CHANGED, KEYS, apply))

        bootstrap = self.settings.bootstrap_api_key.get_secret_value()
        if bootstrap:

            async def register(conn: Conn) -> None:
                await replicate(conn, self.schema, bootstrap_key_id(bootstrap), "bootstrap", "admin", key_hash(bootstrap), False)

            self.on_start.append(register)

        async def lookup(key: str) -> Principal | None:
            # A pool of its own: a flood of requests cannot starve the consumers of connections.
            pool = self._auth_pool or self.pool
            async with pool.acquire() as conn:
                return await replica_lookup(conn, self.schema, key)

        app.add_middleware(ApiKeyMiddleware, lookup=lookup, own_auth=own_auth)

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    async def start(self) -> None:
        dsn = self.settings.database_url
        if not dsn:
            raise RuntimeError("ACOFLOW_DATABASE_URL is not set: run the service under `acoflow up` or set it")
        self._pool = await create_pool(dsn, self.settings.db_pool_size, self.db_session)
        self._auth_pool = await create_pool(dsn, 2)
        async with self._pool.acquire() as conn:
            applied = await apply_migrations(conn, self.schema, self.migrations)
            for directory in self.extra_migrations:
                applied += await apply_migrations(conn, self.schema, directory, prefix=directory.name + "/")
            for hook in self.on_start:
                await hook(conn)
        self.check_wiring()
        await ensure_topics(
            self.settings.kafka_bootstrap, self.own_topics(), partitions=self.settings.topic_partitions, settings=self.settings
        )
        self._producer = make_producer(self.settings.kafka_bootstrap, f"acoflow-{self.name}-outbox", self.settings)
        await self._producer.start()
        self.relay = OutboxRelay(self._pool, self.schema, self._producer, self.name, self.settings, self.event_keys)
        self.relay.start()
        for loop in self._loops:
            loop.start()
        await self.broker.start()
        jobs = [*self.background, self._keep_topics]
        self._tasks = [asyncio.create_task(job(), name=f"{self.name}-bg") for job in jobs]
        # What start-up built (modules, schemas, the app, connections) lives as long as the process: kept out
        # of the cyclic collector, whose full passes over it stalled every consumer for up to 200 ms.
        gc.collect()
        gc.freeze()
        log.info("service_started", migrations_applied=applied)
        if self.event_keys is None:
            log.warning("events_unsigned", detail="ACOFLOW_EVENT_KEYS is not set: internal events are neither signed nor checked")

    def own_topics(self) -> tuple[TopicSpec, ...]:
        """What the service reads or writes: the topics it makes sure exist (a secured broker shows a client only
        the topics it is granted, and lets only the installer create them)."""
        mine = {*self.declaration.consumes, *self.declaration.produces}
        return tuple(t for t in ALL_TOPICS if t in mine)

    def consumer_groups(self) -> list[tuple[str, list[str]]]:
        """Each consumer group the service joins and the topics it reads in it, as its subscribers are wired."""
        return [(str(getattr(sub, "group_id", "")), list(getattr(sub, "topic_names", []))) for sub in self.broker.subscribers]

    async def _keep_topics(self) -> None:
        """A broker that lost its storage (its log deleted, a disk replaced) comes back without topics:
        re-create them, so producers and consumers can carry on where the data is re-sent. The check asks for
        the broker's topics on the outbox producer's connection; only when some are missing does an admin client
        (a connection of its own, made and closed) create them."""
        topics = self.own_topics()
        names = {t.name for t in topics}
        while True:
            await asyncio.sleep(self.settings.topic_check_interval_s)
            try:
                if self._producer is not None:
                    metadata = await self._producer.client.fetch_all_metadata()
                    if names <= metadata.topics():
                        continue
                await ensure_topics(
                    self.settings.kafka_bootstrap,
                    topics,
                    timeout_s=1,
                    partitions=self.settings.topic_partitions,
                    settings=self.settings,
                )
            except Exception as exc:  # the broker is away: try again next round
                log.warning("topic_check_failed", error=type(exc).__name__)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.stop()
        for loop in self._loops:
            await loop.stop()
        if self.relay is not None:
            # One last relay pass so that work committed before the stop is published now, not at next start.
            try:
                await asyncio.wait_for(self.relay.relay_once(), timeout=5)
            except Exception as exc:
                log.warning("final_relay_failed", error=type(exc).__name__)
            await self.relay.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._pool is not None:
            await self._pool.close()
        if self._auth_pool is not None:
            await self._auth_pool.close()
        log.info("service_stopped")

    async def healthy(self) -> dict[str, bool]:
        db = False
        if self._pool is not None:
            try:
                db = await self._pool.fetchval("SELECT 1") == 1
            except (OSError, asyncpg.PostgresError):
                db = False
        broker = await self.broker.ping(timeout=2.0)
        return {"database": db, "broker": bool(broker)}

    def app(self, title: str) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = ServiceApp(max_body=self.settings.max_request_bytes, title=title, lifespan=lifespan)
        app.state.runtime = self

        health_body = {"content": {"application/json": {"schema": {"type": "object"}}}}

        @app.get("/health", tags=["ops"], responses={503: {"description": "the database or broker is away", **health_body}})
        async def health() -> Response:
            checks = await self.healthy()
            ok = all(checks.values())
            return JSONResponse({"service": self.name, "ok": ok, **checks}, status_code=200 if ok else 503)

        @app.get("/unconfirmed", tags=["ops"])
        async def list_unconfirmed(
            _: Annotated[Principal, Depends(requires("viewer"))],
            older_than_s: Annotated[float, Query(ge=0, le=366 * 86400, description="unconfirmed for at least this long")] = 0,
        ) -> list[dict[str, Any]]:
            """Per hop and contract, the events this service sent and their consumer has not confirmed yet (they
            are re-sent until it does)."""
            async with self.pool.acquire() as conn:
                return await unconfirmed(conn, self.schema, older_than_s)

        @app.post("/unconfirmed/resend", tags=["ops"])
        async def resend_unconfirmed(_: Annotated[Principal, Depends(requires("editor"))]) -> dict[str, int]:
            """Send every unconfirmed event again now (its consumer applies each once, however often it comes)."""
            async with self.units() as uow:
                sent = sum([await hop.resend_due(uow, -1.0, 1_000_000) for hop in self._hops])
            return {"resent": sent}

        about = f"What {self.name} reads and writes (docs/asyncapi.json: every service)."
        events: dict[str, Any] = {}  # built at the first request, not at start: it renders every payload's schema

        @app.get("/asyncapi.json", tags=["ops"])
        async def asyncapi() -> dict[str, Any]:
            """The AsyncAPI 3 document of what this service reads and writes: channels, keys, headers, event schemas."""
            if not events:
                events.update(asyncapi_document([self.declaration], f"acoflow {self.name} events", about))
            return events

        @app.get(
            "/metrics",
            tags=["ops"],
            response_class=PlainTextResponse,
            responses={
                200: {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
            },
        )
        async def metrics() -> Response:
            return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

        return app


async def _connection(request: Request) -> AsyncIterator[Conn]:
    """A pooled connection of the runtime serving the request: what routers declared at module level take."""
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.pool.acquire() as conn:
        yield conn


Db = Annotated[Conn, Depends(_connection)]


def instrument_http(app: FastAPI, registry: CollectorRegistry = REGISTRY) -> None:
    """Request counts, sizes and latency per route (acoflow_http_*). Called once the service has added its own
    middleware, so it sits outside the API-key middleware and counts the requests that refuses. Handlers are
    labelled by route template (never a path with an id in it); /health and /metrics are left out."""
    Instrumentator(registry=registry, excluded_handlers=["^/health$", "^/metrics$"]).instrument(app, metric_namespace="acoflow")


def serve(declaration: Declaration, build: Callable[[ServiceRuntime], FastAPI], migrations: Path) -> None:
    settings = get_settings()
    configure_logging(declaration.name, settings.log_level)
    runtime = ServiceRuntime(declaration, migrations, settings)
    app = build(runtime)
    instrument_http(app)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port_of(declaration.name),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
    )
    uvicorn.Server(config).run()

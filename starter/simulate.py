"""`python -m starter simulate SCENARIO.yaml`: run a scenario through the real system.

The real workflows and activities on Temporal's time-skipping test server, a fresh database on
PostgreSQL, the real payment code against a Stripe-compatible server; the report (JSON) is
read back from the system of record. See starter/scenario.py for the format.
"""
import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from adapters.stripe_gateway import StripeGateway
from billing.catalog import DEFAULT_CATALOG_PATH, Catalog, load_catalog, parse_catalog
from billing.intervals import Line
from billing.periods import paris_date, paris_midnight
from billing.rules import Refused
from contracts import search_attributes as sa
from contracts.subscription import Payer
from embedded.postgres import create_database, database_url, drop_database
from embedded.processes import free_port
from observability.metrics import install_runtime
from settings import PROJECT_ROOT, Settings
from starter.concurrently import all_or_cancel
from starter.report import build_report
from starter.scenario import Scenario, ScenarioClient, ScenarioFirm, Step, shift, shift_years
from starter.service import SubscriptionService, workflow_id
from store.db import make_engine, make_session_factory
from store.invoice_documents import invoices_without_document
from store.models import Client as ClientRow
from store.models import Firm, Subscription
from worker import WorkerTuning, build_worker, issuer_from
from workflows.subscription import SubscriptionWorkflow

STEP_TIME = timedelta(hours=12)  # steps happen at noon in Paris, after the night's renewals
SETTLE_TIMEOUT = timedelta(seconds=120)  # real time allowed for due renewals to finish
SLEEP_TIMEOUT = timedelta(minutes=30)  # real time allowed for one move of the clock and all it brings
LOCAL_PAYMENTS_PER_SECOND = 10_000.0  # localstripe: no rate limit to stay under
CONCURRENCY = 32  # steps (and settling queries) in flight at once
# Steps that may number an invoice before they answer (the opening, an upgrade's proration, a
# final invoice): numbers are global and sequential, so these keep the scenario's order.
NUMBERING_VERBS = frozenset({"subscribe", "change_plan", "cancel_now"})
# A card touches its payer's customer and every open invoice of it (a firm's: many clients),
# and retries them in the background: it waits for every earlier step, and every later one for it.
BARRIER_VERBS = frozenset({"update_card"})


@dataclass
class SimulationParts:
    """Where the real parts are: a PostgreSQL server, a Stripe endpoint, the test server binary."""

    postgres_admin_url: str
    stripe_api_key: str
    stripe_api_base: str | None
    test_server_path: str
    template_database: str | None = None  # a migrated database to copy (fast); else migrate


async def simulate(scenario: Scenario, parts: SimulationParts,
                   histories: list[WorkflowHistory] | None = None, *, drawing_apart: bool = False) -> dict[str, Any]:
    """Run every step, then report as of `until`; `histories` collects every workflow run.
    `drawing_apart`: see `simulation`."""
    catalog = parse_catalog(scenario.catalog) if scenario.catalog is not None else load_catalog(DEFAULT_CATALOG_PATH)
    async with simulation(catalog, parts, first_date=scenario.first_date, drawing_apart=drawing_apart) as sim:
        return await sim.run(scenario, histories)


def documents_worker_process(database_url: str, temporal_address: str, namespace: str, task_queue: str,
                             log: Path) -> subprocess.Popen[bytes]:
    """`python -m starter worker` polling only the documents queue, as compose's documents-worker
    runs: the database and Temporal, no Stripe, no SMTP, no seller identity."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("STRIPE_", "SELLER_", "SMTP_", "WORKER_QUEUES", "METRICS_"))}
    env.update(DATABASE_URL=database_url, TEMPORAL_ADDRESS=temporal_address, TEMPORAL_NAMESPACE=namespace,
               TASK_QUEUE=task_queue, WORKER_QUEUES="documents", METRICS_ADDRESS=f"127.0.0.1:{free_port()}",
               LOG_FORMAT="text", LOG_LEVEL="INFO",
               SMTP_URL="")  # empty, not unset: a developer's .env must not make it send simulated mail
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "starter", "worker"], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_until_polling(process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Until the worker says it polls (its log), or fail at once with its log if it ended: a
    documents worker that never came up would stall the clock's moves for half an hour."""
    deadline = time.monotonic() + timeout
    while "worker polling" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the documents worker did not start (see {log}): {tail}")
        time.sleep(0.1)


@contextmanager
def documents_worker(database_url: str, temporal_address: str, namespace: str, task_queue: str,
                     log: Path) -> Iterator[subprocess.Popen[bytes]]:
    log.unlink(missing_ok=True)
    process = documents_worker_process(database_url, temporal_address, namespace, task_queue, log)
    try:
        wait_until_polling(process, log)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)  # finishes what it has in hand, then leaves
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def simulation(catalog: Catalog, parts: SimulationParts, *, first_date: date,
                     task_queue: str | None = None, worker: bool = True,
                     metrics_address: str | None = None, drawing_apart: bool = False) -> AsyncIterator["Simulation"]:
    """A fresh database, a time-skipping server and (unless `worker` is False: the caller runs
    its own, on `task_queue`) a worker; dates are the scenario's own. With `metrics_address`,
    the worker's Prometheus endpoint listens there, as in production. With `drawing_apart`, the
    e-invoices are drawn by a worker process of their own, as production's documents-worker
    (measured: drawing was half of the simulation's GIL time, with one core idle); the tests
    keep them in this process, which starts faster."""
    name = f"simulation_{uuid.uuid4().hex[:12]}"
    create_database(parts.postgres_admin_url, name, template=parts.template_database)
    url = database_url(parts.postgres_admin_url, name)
    tuning = simulation_tuning(parts)
    # the worker's activities, as in production, and a few more for the steps' own reads and writes
    engine = make_engine(url, pool_size=tuning.database_connections, max_overflow=8)
    try:
        with engine.begin() as conn:  # a throwaway database: commits need not wait for the disk
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        engine.dispose()  # connections made from now on take the setting
        if parts.template_database is None:
            from store.migrate import upgrade

            upgrade(url)
        install_runtime(metrics_address, logging.ERROR)  # stdout carries the report only
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter, test_server_existing_path=parts.test_server_path)
        async with env:
            await register_search_attributes(env.client)
            sessions = make_session_factory(engine)
            gateway = StripeGateway(parts.stripe_api_key, parts.stripe_api_base)
            task_queue = task_queue or f"simulation-{uuid.uuid4().hex[:8]}"
            service = SubscriptionService(env.client, sessions, catalog, gateway, task_queue)
            years = shift_years(first_date, paris_date(await env.get_current_time()))
            sim = Simulation(env, service, sessions, years, url)
            if not worker:
                yield sim
                return
            if not drawing_apart:
                async with build_worker(env.client, task_queue, sessions, gateway, tuning=tuning,
                                        issuer=issuer_from(Settings(), catalog)):
                    yield sim
                return
            log = Settings().data_dir / "logs" / f"documents-worker-{task_queue}.log"
            with documents_worker(url, env.client.service_client.config.target_host, env.client.namespace,
                                  task_queue, log):
                async with build_worker(env.client, task_queue, sessions, gateway,
                                        tuning=replace(tuning, queues=("subscriptions", "payments")),
                                        issuer=issuer_from(Settings(), catalog)):
                    yield sim
    finally:
        engine.dispose()
        drop_database(parts.postgres_admin_url, name)


def simulation_tuning(parts: SimulationParts) -> WorkerTuning:
    """The production worker's settings, except that charges to a local Stripe (no rate limit
    of its own) are not held to Stripe's rate."""
    if parts.stripe_api_base is None:
        return WorkerTuning()
    return replace(WorkerTuning(), payments_per_second=LOCAL_PAYMENTS_PER_SECOND)


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in sa.ALL},
    ))


class Simulation:
    """The running system, driven in scenario dates (moved `years` into the future)."""

    def __init__(self, env: WorkflowEnvironment, service: SubscriptionService,
                 sessions: sessionmaker[Session], years: int, database_url: str) -> None:
        self.env, self.service, self.sessions, self.years = env, service, sessions, years
        self.database_url = database_url
        self.errors: list[dict[str, Any]] = []
        self._next_due: dict[tuple[str, str], datetime] = {}  # when each line next renews

    async def run(self, scenario: Scenario, histories: list[WorkflowHistory] | None = None) -> dict[str, Any]:
        """The scenario's parties, its steps day by day, the clock moved to `until`, the report."""
        await self.add_parties(scenario.firms, scenario.clients)
        for day, steps in groupby(enumerate(scenario.steps), key=lambda indexed: indexed[1].at):
            await self.advance_to(day)
            await self.perform_day(list(steps))
        await self.advance_to(scenario.until)
        if histories is not None:
            histories.extend(await self.histories())
        return self.report()

    async def add_parties(self, firms: list[ScenarioFirm], clients: list[ScenarioClient]) -> None:
        with self.sessions.begin() as session:
            session.add_all(Firm(id=f.id, name=f.name) for f in firms)
            session.flush()
            session.add_all(ClientRow(id=c.id, name=c.name, firm_id=c.firm) for c in clients)
        cards = [(Payer(kind="firm", id=f.id), f.card) for f in firms]
        cards += [(Payer(kind="client", id=c.id), c.card) for c in clients]
        limit = asyncio.Semaphore(CONCURRENCY)

        async def register(payer: Payer, card: str) -> None:  # each payer its own Stripe customer
            async with limit:
                await self.service.register_card(payer=payer, card=card)

        await all_or_cancel(register(payer, card) for payer, card in cards if card)

    async def advance_to(self, day: date) -> None:
        """Move the clock to noon (Paris) of `day`, then wait for what fell due to be done."""
        target = paris_midnight(shift(day, self.years)) + STEP_TIME
        now = await self.env.get_current_time()
        if target > now:
            await self.sleep(target - now)
            await self.settle()

    async def sleep(self, duration: timedelta) -> None:
        """`env.sleep`, but allowed SLEEP_TIMEOUT: the server answers once everything due on the
        way is done, which for a month of many renewals outlasts the RPC's default deadline."""
        request = SleepRequest()
        request.duration.FromTimedelta(duration)
        await self.env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=SLEEP_TIMEOUT)

    async def settle(self) -> None:
        """Wait (in real time) until every renewal due by now has been carried out.

        Only subscriptions whose next renewal is due (or not yet known) are asked, all at once."""
        now = await self.env.get_current_time()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT.total_seconds()
        due = [key for key in self._lines() if not (key in self._next_due and self._next_due[key] > now)]
        limit = asyncio.Semaphore(CONCURRENCY)

        async def settle_line(key: tuple[str, str]) -> None:
            async with limit:
                await self._settle_line(key, now, deadline)

        await all_or_cancel(settle_line(key) for key in due)

    async def wait_for_documents(self) -> None:
        """Wait (in real time) until every invoice numbered with its parties' snapshot has its
        e-invoice: they are rendered in the background, beside the charge (issue 11)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT.total_seconds()
        while (missing := await asyncio.to_thread(self._invoices_without_document)):
            if loop.time() > deadline:
                raise TimeoutError(f"invoices still without their e-invoice: {missing}")
            await asyncio.sleep(0.05)

    def _invoices_without_document(self) -> list[str]:
        with self.sessions() as session:
            return [number for _, number in invoices_without_document(session)]

    async def _settle_line(self, key: tuple[str, str], now: datetime, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        handle = self.env.client.get_workflow_handle_for(SubscriptionWorkflow.run, workflow_id(key[0], Line(key[1])))
        while not await self._ask(handle, SubscriptionWorkflow.settled, loop.time() > deadline):
            if loop.time() > deadline:
                raise TimeoutError(f"renewal of {key[0]}/{key[1]} due before {now} did not complete")
            await asyncio.sleep(0.02)
        while (state := await self._ask(handle, SubscriptionWorkflow.current, loop.time() > deadline)) is False:
            await asyncio.sleep(0.02)
        self._next_due[key] = (paris_midnight(state.period_end) if state.ended_on is None
                               else datetime.max.replace(tzinfo=now.tzinfo))

    @staticmethod
    async def _ask(handle: Any, query: Any, last_chance: bool) -> Any:
        """A query; one the server timed out (seen on a loaded machine while the run was
        continuing as new) reads as "not settled yet" and is asked again."""
        try:
            return await handle.query(query)
        except RPCError as exc:
            # DEADLINE_EXCEEDED from the server, CANCELLED "Timeout expired" from the client's own
            # RPC timeout (seen in a year-long simulation): both mean "no answer yet".
            if exc.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED) or last_chance:
                raise
            return False

    async def perform_day(self, steps: list[tuple[int, Step]]) -> None:
        """The steps of one day (with their indexes in the scenario), concurrently where they
        touch different clients.

        A step waits for the earlier steps of its client; one that may number an invoice for
        the one before it that may (so numbers follow the scenario's order, as when run one by
        one); a card update for every earlier step, and every later step for it. Refusals are
        reported in step order."""
        after = waits_for([step for _, step in steps])
        refusals: dict[int, str] = {}
        limit = asyncio.Semaphore(CONCURRENCY)
        tasks: list[asyncio.Task[None]] = []

        async def run(position: int) -> None:
            for earlier in after[position]:
                await asyncio.shield(tasks[earlier])  # its failure fails this one too
            index, step = steps[position]
            async with limit:
                try:
                    await self.perform(step, index)
                except (Refused, ValidationError) as exc:
                    refusals[index] = self.in_scenario_dates(_sentence(exc))

        for position in range(len(steps)):
            tasks.append(asyncio.create_task(run(position)))
        try:
            await all_or_cancel(tasks)
        finally:
            self.errors.extend({"step": index, "error": refusals[index]} for index in sorted(refusals))

    async def perform(self, step: Step, index: int) -> None:
        try:
            await _perform(self.service, step, index, await self.env.get_current_time())
        finally:  # a step may start, end or move a subscription of its client: ask again
            client = step.args.get("client")
            self._next_due = {k: v for k, v in self._next_due.items() if k[0] != client}

    def in_scenario_dates(self, text: str) -> str:
        """Speak in the scenario's own dates in error sentences too."""
        def back(match: re.Match[str]) -> str:
            try:
                return shift(datetime.strptime(match.group(0), "%Y-%m-%d").date(), -self.years).isoformat()
            except ValueError:
                return match.group(0)
        return re.sub(r"\b\d{4}-\d{2}-\d{2}\b", back, text)

    def report(self) -> dict[str, Any]:
        with self.sessions() as session:
            return build_report(session, self.errors, lambda d: shift(d, -self.years))

    async def histories(self) -> list[WorkflowHistory]:
        """Every run of every subscription workflow, walking continue-as-new chains backwards."""
        found = []
        for client_id, line in self._lines():
            wf_id, run_id = workflow_id(client_id, Line(line)), None
            while True:
                history = await self.env.client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
                found.append(history)
                started = history.events[0].workflow_execution_started_event_attributes
                run_id = started.continued_execution_run_id or None
                if run_id is None:
                    break
        return found

    def _lines(self) -> list[tuple[str, str]]:
        with self.sessions() as session:
            return sorted({(c, l) for c, l in session.execute(select(Subscription.client_id, Subscription.line))})


# --- steps ----------------------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client: str
    line: str | None = None


class _Subscribe(_Args):
    plan: str
    interval: str
    payer: str


class _Usage(_Args):
    documents: int
    event_id: str | None = None


class _ChangePlan(_Args):
    plan: str


class _SwitchInterval(_Args):
    interval: str


class _TakeOver(_Args):
    payer: str


class _UpdateCard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    card: str
    client: str | None = None
    firm: str | None = None


async def _perform(service: SubscriptionService, step: Step, index: int, now: datetime) -> None:
    verb, raw = step.verb, step.args
    if verb == "subscribe":
        a = _Subscribe.model_validate(raw)
        await service.subscribe(client_id=a.client, plan_code=a.plan, interval=a.interval, payer_kind=a.payer)
    elif verb == "usage":
        u = _Usage.model_validate(raw)
        await service.report_usage(event_id=u.event_id or f"scenario-step-{index}", client_id=u.client,
                                   occurred_at=now, documents=u.documents)
    elif verb == "change_plan":
        c = _ChangePlan.model_validate(raw)
        await service.change_plan(client_id=c.client, plan_code=c.plan, line=c.line)
    elif verb == "switch_interval":
        s = _SwitchInterval.model_validate(raw)
        await service.switch_interval(client_id=s.client, interval=s.interval, line=s.line)
    elif verb == "take_over":
        t = _TakeOver.model_validate(raw)
        await service.take_over(client_id=t.client, payer_kind=t.payer, line=t.line)
    elif verb == "update_card":
        card = _UpdateCard.model_validate(raw)
        if (card.client is None) == (card.firm is None):
            raise Refused("update_card names either a client or a firm")
        payer = Payer(kind="client", id=card.client) if card.client else Payer(kind="firm", id=card.firm or "")
        await service.register_card(payer=payer, card=card.card)
    else:  # cancel, reactivate, cancel_now, stop_paying: a client (and a line) only
        target = _Args.model_validate(raw)
        action: Callable[..., Awaitable[Any]] = getattr(service, verb)
        await action(client_id=target.client, line=target.line)


def waits_for(steps: list[Step]) -> list[list[int]]:
    """For each step of one day, the positions of the earlier steps it must wait for: the last
    one of its client; the last one that may number an invoice, when it may too; the last card
    update; and, for a card update, every earlier step."""
    after: list[list[int]] = []
    last_of_client: dict[str, int] = {}
    last_numbering: int | None = None
    last_barrier: int | None = None
    for position, step in enumerate(steps):
        if step.verb in BARRIER_VERBS:
            after.append(list(range(position)))
            last_barrier = position
            continue
        client = _client_key(step)
        waits = {p for p in (last_of_client.get(client), last_barrier) if p is not None}
        if step.verb in NUMBERING_VERBS and last_numbering is not None:
            waits.add(last_numbering)
        after.append(sorted(waits))
        last_of_client[client] = position
        if step.verb in NUMBERING_VERBS:
            last_numbering = position
    return after


def _client_key(step: Step) -> str:
    """Which client a step touches (as text: a malformed step may name anything, or nothing)."""
    return repr(step.args.get("client"))




def _sentence(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'step'}: {e['msg']}" for e in exc.errors()]
        return "bad step: " + "; ".join(parts)
    return str(exc)


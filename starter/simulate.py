"""`python -m starter simulate SCENARIO.yaml`: run a scenario through the real system.

The real workflows and activities on Temporal's time-skipping test server, a fresh database on
PostgreSQL, the real payment code against a Stripe-compatible server; the report (JSON) is
read back from the system of record. See starter/scenario.py for the format.
"""
import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.stripe_gateway import StripeGateway
from billing.intervals import Line
from billing.catalog import DEFAULT_CATALOG_PATH, Catalog, load_catalog, parse_catalog
from billing.periods import paris_date, paris_midnight
from billing.rules import Refused
from embedded.postgres import create_database, database_url, drop_database
from starter.report import build_report
from starter.scenario import Scenario, Step, shift, shift_years
from starter.service import SubscriptionService, workflow_id
from store.db import make_engine, make_session_factory
from store.models import Client as ClientRow, Firm, Subscription
from workflows import search_attributes as sa
from workflows.models import Payer
from worker import build_worker, forward_core_logs

STEP_TIME = timedelta(hours=12)  # steps happen at noon in Paris, after the night's renewals
SETTLE_TIMEOUT = timedelta(seconds=120)  # real time allowed for due renewals to finish


@dataclass
class SimulationParts:
    """Where the real parts are: a PostgreSQL server, a Stripe endpoint, the test server binary."""

    postgres_admin_url: str
    stripe_api_key: str
    stripe_api_base: str | None
    test_server_path: str
    template_database: str | None = None  # a migrated database to copy (fast); else migrate
    histories: list[WorkflowHistory] = field(default_factory=list)  # filled when collect_histories


async def simulate(scenario: Scenario, parts: SimulationParts, *, collect_histories: bool = False) -> dict[str, Any]:
    catalog = parse_catalog(scenario.catalog) if scenario.catalog is not None else load_catalog(DEFAULT_CATALOG_PATH)
    name = f"simulation_{uuid.uuid4().hex[:12]}"
    create_database(parts.postgres_admin_url, name, template=parts.template_database)
    url = database_url(parts.postgres_admin_url, name)
    engine = make_engine(url)
    try:
        if parts.template_database is None:
            from store.migrate import upgrade

            upgrade(url)
        forward_core_logs(logging.ERROR)  # stdout carries the report only
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter, test_server_existing_path=parts.test_server_path)
        async with env:
            await register_search_attributes(env.client)
            return await _run(scenario, catalog, env, engine, parts, collect_histories)
    finally:
        engine.dispose()
        drop_database(parts.postgres_admin_url, name)


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in sa.ALL},
    ))


async def _run(scenario: Scenario, catalog: Catalog, env: WorkflowEnvironment, engine: Any,
               parts: SimulationParts, collect_histories: bool) -> dict[str, Any]:
    sessions = make_session_factory(engine)
    gateway = StripeGateway(parts.stripe_api_key, parts.stripe_api_base)
    task_queue = f"simulation-{uuid.uuid4().hex[:8]}"
    service = SubscriptionService(env.client, sessions, catalog, gateway, task_queue)
    years = shift_years(scenario.first_date, paris_date(await env.get_current_time()))
    errors: list[dict[str, Any]] = []
    async with build_worker(env.client, task_queue, sessions, gateway):
        await _seed(scenario, service)
        for index, step in enumerate(scenario.steps):
            await _advance_to(env, paris_midnight(shift(step.at, years)) + STEP_TIME)
            await _settle(env, service)
            try:
                await _perform(service, step, index, await env.get_current_time())
            except (Refused, ValidationError) as exc:
                errors.append({"step": index, "error": _unshift_dates(_sentence(exc), years)})
        await _advance_to(env, paris_midnight(shift(scenario.until, years)) + STEP_TIME)
        await _settle(env, service)
        if collect_histories:
            parts.histories.extend(await _histories(env.client, service))
    with sessions() as session:
        return build_report(session, errors, lambda d: shift(d, -years))


async def _seed(scenario: Scenario, service: SubscriptionService) -> None:
    with service.sessions.begin() as session:
        session.add_all(Firm(id=f.id, name=f.name) for f in scenario.firms)
        session.flush()
        session.add_all(ClientRow(id=c.id, name=c.name, firm_id=c.firm) for c in scenario.clients)
    for firm in scenario.firms:
        if firm.card:
            await service.register_card(payer=Payer(kind="firm", id=firm.id), card=firm.card)
    for client in scenario.clients:
        if client.card:
            await service.register_card(payer=Payer(kind="client", id=client.id), card=client.card)


async def _advance_to(env: WorkflowEnvironment, target: datetime) -> None:
    now = await env.get_current_time()
    if target > now:
        await env.sleep(target - now)


async def _settle(env: WorkflowEnvironment, service: SubscriptionService) -> None:
    """Wait (in real time) until every renewal due by now has been carried out."""
    now = await env.get_current_time()
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT.total_seconds()
    for client_id, line in _lines(service):
        while True:
            state = await service.state(client_id=client_id, line=line)
            if state.ended_on is not None or paris_midnight(state.period_end) > now:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"renewal of {client_id}/{line} due before {now} did not complete")
            await asyncio.sleep(0.02)


def _lines(service: SubscriptionService) -> list[tuple[str, str]]:
    from sqlalchemy import select

    with service.sessions() as session:
        return sorted(set(session.execute(select(Subscription.client_id, Subscription.line)).tuples()))


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
    else:
        a = _Args.model_validate(raw)
        action: Callable[..., Awaitable[Any]] = getattr(service, verb)
        await action(client_id=a.client, line=a.line)


def _sentence(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'step'}: {e['msg']}" for e in exc.errors()]
        return "bad step: " + "; ".join(parts)
    return str(exc)


def _unshift_dates(text: str, years: int) -> str:
    """Speak in the scenario's own dates in error sentences too."""
    def back(match: re.Match[str]) -> str:
        try:
            return shift(datetime.strptime(match.group(0), "%Y-%m-%d").date(), -years).isoformat()
        except ValueError:
            return match.group(0)
    return re.sub(r"\b\d{4}-\d{2}-\d{2}\b", back, text)


async def _histories(client: Client, service: SubscriptionService) -> list[WorkflowHistory]:
    """Every run of every subscription workflow, walking continue-as-new chains backwards."""
    histories = []
    for client_id, line in _lines(service):
        wf_id, run_id = workflow_id(client_id, _line(line)), None
        while True:
            history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
            histories.append(history)
            started = history.events[0].workflow_execution_started_event_attributes
            run_id = started.continued_execution_run_id or None
            if run_id is None:
                break
    return histories


def _line(value: str) -> Line:
    return Line(value)


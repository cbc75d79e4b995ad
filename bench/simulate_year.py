"""How long does a simulation of 100 subscriptions over 12 months take?

Figure: `simulate` of 100 clients (three plans, both payers), each sending usage every month,
for a year: the real workflows, activities, PostgreSQL and localstripe on the time-skipping
server. Baseline, same run, same machine: the engine floor — 100 bare workflows on the same
kind of server, each waiting 12 monthly timers and calling one no-op activity per period.

    python bench/simulate_year.py            prints a JSON line last: figure, baseline, ratio, unit
"""
import asyncio
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bare_workflow import BareRenewals, noop  # noqa: E402  (bench/ is on the path)

SUBSCRIPTIONS = 100
MONTHS = 12


def scenario() -> dict:
    plans = [("essentiel", "firm"), ("standard", "client"), ("premium", "firm")]
    clients, steps = [], []
    for i in range(SUBSCRIPTIONS):
        clients.append({"id": f"cli-{i}", "name": f"Client {i}", "firm": f"cab-{i % 5}", "card": "4242424242424242"})
    for i in range(SUBSCRIPTIONS):
        plan, payer = plans[i % 3]
        steps.append({"at": date(2025, 1, 1 + i % 10), "subscribe": {
            "client": f"cli-{i}", "plan": plan, "interval": "monthly", "payer": payer}})
    for month in range(MONTHS):
        day = date(2025 + (month // 12), 1 + month % 12, 20)
        steps += [{"at": day, "usage": {"client": f"cli-{i}", "documents": 20 + (i * 7) % 60}}
                  for i in range(SUBSCRIPTIONS)]
    return {
        "firms": [{"id": f"cab-{f}", "name": f"Cabinet {f}", "card": "4242424242424242"} for f in range(5)],
        "clients": clients, "steps": sorted(steps, key=lambda s: s["at"]), "until": date(2026, 1, 11),
    }


async def baseline(test_server: str) -> float:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server,
                                                       data_converter=pydantic_data_converter)
    async with env:
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        async with Worker(env.client, task_queue=queue, workflows=[BareRenewals], activities=[noop],
                          activity_executor=ThreadPoolExecutor(16)):
            started = time.perf_counter()
            handles = [await env.client.start_workflow(BareRenewals.run, MONTHS, id=f"bare-{i}", task_queue=queue)
                       for i in range(SUBSCRIPTIONS)]
            for handle in handles:
                await handle.result()
            return time.perf_counter() - started


async def figure(parts) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    from starter.scenario import Scenario
    from starter.simulate import simulate

    model = Scenario.model_validate(scenario())
    started = time.perf_counter()
    report = await simulate(model, parts)
    return time.perf_counter() - started, report


def main() -> None:
    from embedded.postgres import EmbeddedPostgres
    from embedded.stripe_server import LOCALSTRIPE_KEY, start_localstripe
    from embedded.temporal import test_server_path
    from settings import PROJECT_ROOT
    from starter.simulate import SimulationParts
    from worker import forward_core_logs

    forward_core_logs()
    postgres = EmbeddedPostgres(PROJECT_ROOT / ".var" / "bench" / "postgres")
    stripe = start_localstripe(Path(tempfile.mkdtemp()))
    try:
        parts = SimulationParts(postgres.url(), LOCALSTRIPE_KEY, stripe.api_base, test_server_path())
        base = asyncio.run(baseline(parts.test_server_path))
        seconds, report = asyncio.run(figure(parts))
    finally:
        stripe.stop()
        postgres.stop()
    invoices = len(report["invoices"])
    print(f"simulation: {SUBSCRIPTIONS} subscriptions x {MONTHS} months, {invoices} invoices, "
          f"{len(report['errors'])} refused steps, {seconds:.2f} s", file=sys.stderr)
    print(f"baseline: {SUBSCRIPTIONS} bare workflows x {MONTHS} timers + no-op activities, {base:.2f} s", file=sys.stderr)
    print(json.dumps({"figure": round(seconds, 3), "baseline": round(base, 3),
                      "ratio": round(seconds / base, 2), "unit": "s",
                      "what": f"simulate {SUBSCRIPTIONS} subscriptions over {MONTHS} months vs engine floor"}))


if __name__ == "__main__":
    main()

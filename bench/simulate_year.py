"""How fast does `simulate` run 100 subscriptions over 12 months?

Figure: subscription-months per second of a simulation of 100 clients (three plans, both
payers), each sending usage every month, for a year: the real workflows, activities,
PostgreSQL and localstripe on the time-skipping server (1,200 subscription-months, 1,300
invoices). Baseline, same run, same machine: the engine floor, in the same unit: 100 bare
workflows on the same kind of server, each waiting 12 monthly timers and calling one no-op
activity per period. Ratio: figure / baseline (1 would be a simulation as fast as bare timers).

Both EXCLUDE server start and database set-up: the figure is timed from the parties' creation
to the report (`Simulation.run`), after the database was created and migrated, the
time-skipping server started and the worker polling; the baseline from the first workflow's
start to the last one's result, after its server and worker started. Both workers run in this
process; the simulation's e-invoices are drawn by a documents worker in a process of its own,
as `python -m starter simulate` and production (docker-compose.yml) draw them.

    python bench/simulate_year.py      prints a JSON line last: figure, baseline, ratio, unit
"""
import argparse
import asyncio
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bare_workflow import BareRenewals, noop  # noqa: E402  (bench/ is on the path)

SUBSCRIPTIONS = 100
MONTHS = 12
GOAL = 50.0  # subscription-months per second (issue 10)


def scenario() -> dict[str, Any]:
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
    """Seconds for the engine floor's 100 x 12 months, server and worker start excluded."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server,
                                                       data_converter=pydantic_data_converter)
    async with env:
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        async with Worker(env.client, task_queue=queue, workflows=[BareRenewals], activities=[noop],
                          activity_executor=ThreadPoolExecutor(16), max_concurrent_activities=16):
            started = time.perf_counter()
            handles = [await env.client.start_workflow(BareRenewals.run, MONTHS, id=f"bare-{i}", task_queue=queue)
                       for i in range(SUBSCRIPTIONS)]
            for handle in handles:
                await handle.result()
            return time.perf_counter() - started


async def figure(parts: Any) -> tuple[float, dict[str, Any]]:
    """Seconds for the simulation's run (parties, steps, clock, report), set-up excluded."""
    from billing.catalog import DEFAULT_CATALOG_PATH, load_catalog
    from starter.scenario import Scenario
    from starter.simulate import simulation

    model = Scenario.model_validate(scenario())
    async with simulation(load_catalog(DEFAULT_CATALOG_PATH), parts, first_date=model.first_date,
                          drawing_apart=True) as sim:
        started = time.perf_counter()
        report = await sim.run(model)
        return time.perf_counter() - started, report


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()

    from local_parts import simulation_parts

    from worker import forward_core_logs

    forward_core_logs()
    with ExitStack() as stack:
        parts = simulation_parts(stack)
        base_seconds = asyncio.run(baseline(parts.test_server_path))
        seconds, report = asyncio.run(figure(parts))
    months = SUBSCRIPTIONS * MONTHS
    rate, base_rate = months / seconds, months / base_seconds
    print(f"simulation: {SUBSCRIPTIONS} subscriptions x {MONTHS} months, {len(report['invoices'])} invoices, "
          f"{len(report['errors'])} refused steps, {seconds:.2f} s: {rate:.1f} subscription-months/s "
          f"(goal >= {GOAL:.0f})", file=sys.stderr)
    print(f"baseline: {SUBSCRIPTIONS} bare workflows x {MONTHS} timers + no-op activities, {base_seconds:.2f} s: "
          f"{base_rate:.1f} months/s", file=sys.stderr)
    print(json.dumps({"figure": round(rate, 2), "baseline": round(base_rate, 2), "ratio": round(rate / base_rate, 3),
                      "unit": "subscription-months/s",
                      "what": f"simulate {SUBSCRIPTIONS} subscriptions over {MONTHS} months vs engine floor "
                              "(timers + no-op activity), server start and database set-up excluded from both"}))


if __name__ == "__main__":
    main()

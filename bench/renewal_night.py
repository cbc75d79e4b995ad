"""Renewal night: subscriptions already open, whose periods all end at one midnight, renew when
their timers fire; no import in the window.

bench/renewal_storm.py times imports and renewals together (its subscriptions' periods end
today, so each renews as soon as it is imported, and the imports set its pace). This one
times the renewals alone, as on the 1st of a month: N subscriptions are imported with a period
ending tomorrow and left to sleep; then the clock moves to that midnight and the time is taken
until the last renewal invoice is paid (invoice issued and charged; its e-invoice may still be
drawing: `seconds_until_all_drawn` says when the server had done everything). Temporal's dev server
cannot move its clock, so this runs on the time-skipping test server (`simulation`), with
PostgreSQL and localstripe; workflows, database activities and charges in this process, the
e-invoices drawn by a documents worker process of their own (as in production).

Baseline, same run, a fresh time-skipping server, worker in this process: N bare workflows
asleep until one instant, then each running one no-op activity, timed the same way (from the
clock's move to the last result). Ratio = figure / baseline. Also the CPU each process spent,
per renewal and per bare workflow (bench/cpu.py).

    python bench/renewal_night.py             1,000 renewals
    python bench/renewal_night.py --quick     100

Prints a JSON line last: figure, baseline, ratio, unit, and the checks.
"""
import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cpu import CpuMeter, processes  # noqa: E402  (bench/ is on the path)
from renewal_storm import FIRMS, PLANS, gather_bounded, invoice_numbers, seed_parties  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

TODAY = date(2090, 9, 30)  # after any real today: the simulation's dates need no shift
MIDNIGHT = date(2090, 10, 1)  # every period ends here


def server_patterns(test_server: str) -> dict[str, str]:
    return {"temporal": test_server, "documents_worker": "-m starter worker", "localstripe": "embedded.stripe_server"}


async def baseline(test_server: str, count: int) -> tuple[float, dict[str, float]]:
    from bare_workflow import BareNight, noop
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server)
    async with env:
        queue = f"night-{uuid.uuid4().hex[:6]}"
        async with Worker(env.client, task_queue=queue, workflows=[BareNight], activities=[noop],
                          activity_executor=ThreadPoolExecutor(16), max_concurrent_activities=16):
            night = 86_400
            handles = await gather_bounded([partial(env.client.start_workflow, BareNight.run, night,
                                                    id=f"{queue}-{i}", task_queue=queue) for i in range(count)])
            await gather_bounded([partial(handle.query, BareNight.asleep) for handle in handles])  # all asleep
            meter = CpuMeter(lambda: {**processes(server_patterns(test_server)), os.getpid(): "bench"})
            meter.start()
            started = time.perf_counter()
            await env.sleep(timedelta(seconds=night + 1))
            with env.auto_time_skipping_disabled():  # the clock has moved: wait in real time
                await gather_bounded([handle.result for handle in handles])
            return count / (time.perf_counter() - started), meter.stop(count)


def paid_renewals(sessions: Any) -> int:
    with sessions() as session:
        return session.scalar(text(
            "select count(*) from invoices where status = 'paid' and idempotency_key like '%:fee:%'")) or 0


def checks(sessions: Any, count: int) -> dict[str, Any]:
    from store.models import Invoice

    with sessions() as session:
        renewal = session.execute(select(Invoice.subscription_id).where(
            Invoice.idempotency_key.like("%:fee:%"))).scalars().all()
        numbers = invoice_numbers(session)
        issued_on = session.execute(text("select distinct issued_on from invoices")).scalars().all()
    return {
        "subscriptions_renewed": len(set(renewal)), "missing_renewals": count - len(set(renewal)),
        "subscriptions_with_two_renewal_invoices": len(renewal) - len(set(renewal)),
        "invoice_numbers": numbers,
        "issued_on": [str(day) for day in issued_on],
    }


async def figure(parts: Any, count: int) -> dict[str, Any]:
    from billing.catalog import DEFAULT_CATALOG_PATH, load_catalog
    from billing.periods import paris_midnight
    from contracts.subscription import Payer
    from starter.simulate import STEP_TIME, simulation

    async with simulation(load_catalog(DEFAULT_CATALOG_PATH), parts, first_date=TODAY, drawing_apart=True) as sim:
        assert sim.years == 0, "TODAY must lie after the real today"
        seed_parties(sim.sessions, count, 0)
        for f in range(FIRMS):
            await sim.service.register_card(payer=Payer(kind="firm", id=f"cab-{f}"), card="4242424242424242")
        await sim.advance_to(TODAY)
        imported = (date(2090, 9, 1), MIDNIGHT)  # the old tool billed September; October is ours
        opening = time.perf_counter()
        await gather_bounded([partial(sim.service.subscribe, client_id=f"cli-{i}", plan_code=PLANS[i % 3],
                                      interval="monthly", payer_kind="firm", imported=imported)
                              for i in range(count)])
        await sim.settle()  # every one asleep until its renewal
        opened_per_second = count / (time.perf_counter() - opening)
        test_server = parts.test_server_path
        meter = CpuMeter(lambda: {**processes(server_patterns(test_server)), os.getpid(): "bench"})
        meter.start()
        started, started_at = time.perf_counter(), datetime.now(UTC)
        # The test server answers once all that fell due is done, e-invoices drawn included.
        await sim.sleep(paris_midnight(MIDNIGHT) + STEP_TIME - await sim.env.get_current_time())
        while (paid := await asyncio.to_thread(paid_renewals, sim.sessions)) < count:
            if time.perf_counter() - started > 1800:
                raise TimeoutError(f"{paid} of {count} renewals paid after 30 minutes")
            await asyncio.sleep(0.2)
        all_done = time.perf_counter() - started
        cpu = meter.stop(count)
        # The figure: until the last charge succeeded (PostgreSQL's clock is this machine's).
        last_paid = await asyncio.to_thread(lambda: sim.sessions().scalar(text(
            "select max(updated_at) from payment_attempts where status = 'succeeded'")))
        elapsed = (last_paid - started_at).total_seconds()
        await sim.settle()
        drawn = await asyncio.to_thread(lambda: sim.sessions().scalar(text("select count(*) from invoice_documents")))
        return {"renewals": count, "seconds": round(elapsed, 2), "seconds_until_all_drawn": round(all_done, 2),
                "opened_per_second": round(opened_per_second, 1),
                "cpu_ms_per_renewal": cpu, "documents_drawn_by_then": drawn,
                "checks": checks(sim.sessions, count)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 renewals")
    parser.add_argument("--renewals", type=int, help="subscriptions renewing at the midnight (default 1000)")
    args = parser.parse_args()
    count = args.renewals or (100 if args.quick else 1000)

    from local_parts import simulation_parts

    from worker import forward_core_logs

    forward_core_logs()
    with ExitStack() as stack:
        parts = simulation_parts(stack)
        floor, floor_cpu = asyncio.run(baseline(parts.test_server_path, count))
        result = asyncio.run(figure(parts, count))
    rate = result["renewals"] / result["seconds"]
    print(json.dumps({
        "figure": round(rate, 2), "baseline": round(floor, 2), "ratio": round(rate / floor, 3),
        "unit": "renewals/s at one midnight (invoice issued and charged) vs bare workflows waking to one "
                "no-op activity/s, both on the time-skipping server",
        **result, "baseline_cpu_ms_per_workflow": floor_cpu,
    }))


if __name__ == "__main__":
    main()

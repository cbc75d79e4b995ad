"""The engine-floor workflow the benchmarks compare against: timers and a no-op activity."""
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
def noop(period: int) -> int:
    return period


@workflow.defn
class BareRenewals:
    @workflow.run
    async def run(self, months: int) -> int:
        for period in range(months):
            await workflow.execute_activity(noop, period, start_to_close_timeout=timedelta(seconds=30))
            await workflow.sleep(timedelta(days=30))
        return months


@workflow.defn
class BareOnce:
    """The floor of a renewal: a workflow that runs one no-op activity (bench/renewal_storm.py)."""

    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(noop, n, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn
class BareNight:
    """The floor of a renewal night (bench/renewal_night.py): sleep until one instant, shared by
    every workflow, then run one no-op activity."""

    def __init__(self) -> None:
        self._asleep = False

    @workflow.run
    async def run(self, seconds: int) -> int:
        self._asleep = True
        await workflow.sleep(timedelta(seconds=seconds))
        return await workflow.execute_activity(noop, seconds, start_to_close_timeout=timedelta(seconds=30))

    @workflow.query
    def asleep(self) -> bool:
        return self._asleep


async def serve(address: str, task_queue: str) -> None:
    """A worker of the bare workflows in its own process, as ours runs in its own."""
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    await Worker(client, task_queue=task_queue, workflows=[BareRenewals, BareOnce], activities=[noop],
                 activity_executor=ThreadPoolExecutor(16), max_concurrent_activities=16).run()


if __name__ == "__main__":  # python bench/bare_workflow.py ADDRESS TASK_QUEUE
    import asyncio
    import sys

    asyncio.run(serve(sys.argv[1], sys.argv[2]))

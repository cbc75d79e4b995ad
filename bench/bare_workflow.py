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

"""Running awaitables side by side, the way the simulator and the importer both need it."""
import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any


async def all_or_cancel(work: Iterable[Awaitable[Any]]) -> None:
    """Await every one at once; on the first failure, cancel the rest, wait for them, and raise it."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

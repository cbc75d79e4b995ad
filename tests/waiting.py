"""Waiting in real time for what another process or server does (dev-server tests)."""
import asyncio
import time
from collections.abc import Callable


async def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Until `condition()` holds; a hang guard, not a timing."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.2)

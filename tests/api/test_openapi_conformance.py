"""Every operation of /openapi.json, fuzzed by schemathesis against the real app served over
HTTP on loopback (real PostgreSQL, Temporal's time-skipping server with the worker, local
Stripe): no 5xx, and no response that breaks its own schema (issue 8)."""
import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from embedded.processes import free_port
from starter.simulate import SimulationParts
from tests.api.conftest import api_on

# The bar: no 5xx, and every answer as documented (status, content type, body). Not
# "valid-looking data is accepted": a well-formed request for another firm's client, or a
# plan not in the catalogue, is rightly refused.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class LiveApi:
    """The app and the real parts on an event loop of their own, in a thread."""

    def __init__(self, parts: SimulationParts) -> None:
        self.port = free_port()
        self.keys: dict[str, str] = {}
        self._started, self._stop = threading.Event(), threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(parts)), daemon=True)

    async def _serve(self, parts: SimulationParts) -> None:
        try:
            async with api_on(parts) as api:
                self.keys = api.keys
                app = api.http._transport.app  # type: ignore[attr-defined]
                server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
                task = asyncio.create_task(server.serve())
                while not server.started:
                    await asyncio.sleep(0.02)
                self._started.set()
                await asyncio.get_running_loop().run_in_executor(None, self._stop.wait)
                server.should_exit = True
                await task
        except BaseException as exc:  # noqa: BLE001  surfaced by start()
            self._error = exc
            self._started.set()

    def start(self) -> "LiveApi":
        self._thread.start()
        self._started.wait(120)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


@pytest.fixture(scope="module")
def live_api(simulation_parts: SimulationParts) -> Iterator[LiveApi]:
    api = LiveApi(simulation_parts).start()
    yield api
    api.stop()


def test_no_operation_answers_5xx_or_breaks_its_schema(live_api: LiveApi) -> None:
    """Each operation gets up to 20 generated requests (firm A's key); schemathesis' checks:
    no server error, documented status codes and content types, bodies matching the schema."""
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{live_api.port}/openapi.json")
    headers = {"Authorization": f"Bearer {live_api.keys['cab-a']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)
        check()

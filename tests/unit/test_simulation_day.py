"""The simulator runs the steps of one day concurrently where they touch different clients, and
keeps in the scenario's order what numbers invoices (numbers are global and sequential)."""
import asyncio
from datetime import date
from typing import Any

import pytest

from billing.rules import Refused
from starter.scenario import Step
from starter.simulate import Simulation, waits_for

DAY = date(2025, 3, 1)


def step(verb: str, **args: Any) -> Step:
    return Step.model_validate({"at": DAY, verb: args})


def test_steps_of_different_clients_wait_for_nothing() -> None:
    assert waits_for([step("usage", client=f"c{i}", documents=1) for i in range(4)]) == [[], [], [], []]


def test_a_clients_steps_keep_their_order() -> None:
    steps = [step("usage", client="a", documents=1), step("usage", client="b", documents=1),
             step("cancel", client="a"), step("reactivate", client="a")]
    assert waits_for(steps) == [[], [], [0], [2]]


def test_steps_that_may_number_an_invoice_keep_the_scenarios_order() -> None:
    steps = [step("subscribe", client="a", plan="essentiel", interval="monthly", payer="firm"),
             step("usage", client="b", documents=1),
             step("change_plan", client="c", plan="premium"),
             step("cancel", client="d"),
             step("cancel_now", client="e"),
             step("subscribe", client="f", plan="essentiel", interval="monthly", payer="client")]
    assert waits_for(steps) == [[], [], [0], [], [2], [4]]


def test_a_card_update_waits_for_everything_before_it_and_everything_after_waits_for_it() -> None:
    steps = [step("usage", client="a", documents=1), step("cancel", client="b"),
             step("update_card", firm="cab", card="4242424242424242"),
             step("usage", client="c", documents=1), step("change_plan", client="d", plan="premium")]
    assert waits_for(steps) == [[], [], [0, 1], [2], [2]]


def test_steps_naming_no_client_count_as_one_client() -> None:
    steps = [step("cancel"), step("reactivate", line="payments"), step("usage", client="a", documents=1)]
    assert waits_for(steps) == [[], [0], []]


class _Recorder(Simulation):
    """A Simulation whose steps only record when they start and end (no server)."""

    def __init__(self, refuse: set[int]) -> None:
        self.errors: list[dict[str, Any]] = []
        self.years = 0
        self.events: list[tuple[str, int]] = []
        self.refuse = refuse

    async def perform(self, step: Step, index: int) -> None:
        self.events.append(("start", index))
        await asyncio.sleep(0.01 * (1 + index % 3))
        self.events.append(("end", index))
        if index in self.refuse:
            raise Refused(f"step {index} refused on 2025-03-01")


def test_a_day_runs_unrelated_steps_at_once_and_reports_refusals_in_step_order() -> None:
    steps = [step("usage", client=f"c{i}", documents=1) for i in range(6)]
    sim = _Recorder(refuse={13, 11})
    asyncio.run(sim.perform_day(list(enumerate(steps, start=10))))  # indexes in the scenario: 10-15
    starts = [i for kind, i in sim.events if kind == "start"]
    first_end = next(n for n, (kind, _) in enumerate(sim.events) if kind == "end")
    assert sorted(starts) == list(range(10, 16)) and first_end == 6  # all started before any ended
    assert [e["step"] for e in sim.errors] == [11, 13]
    assert sim.errors[0]["error"] == "step 11 refused on 2025-03-01"


def test_numbering_steps_run_one_after_the_other_in_the_scenarios_order() -> None:
    steps = [step("subscribe", client=f"c{i}", plan="essentiel", interval="monthly", payer="firm") for i in range(4)]
    steps.insert(2, step("usage", client="x", documents=1))
    sim = _Recorder(refuse=set())
    asyncio.run(sim.perform_day(list(enumerate(steps))))
    numbering = [(kind, i) for kind, i in sim.events if i != 2]
    assert numbering == [(kind, i) for i in (0, 1, 3, 4) for kind in ("start", "end")]
    assert sim.events.index(("start", 2)) < sim.events.index(("end", 1))  # the usage did not wait


def test_a_failure_stops_the_day_and_is_raised() -> None:
    class Broken(_Recorder):
        async def perform(self, step: Step, index: int) -> None:
            if index == 1:
                raise RuntimeError("server gone")
            await asyncio.sleep(1)

    steps = [step("usage", client="a", documents=1), step("usage", client="b", documents=1),
             step("usage", client="b", documents=2)]
    with pytest.raises(RuntimeError, match="server gone"):
        asyncio.run(Broken(refuse=set()).perform_day(list(enumerate(steps))))

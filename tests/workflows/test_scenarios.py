"""Every scenario in tests/scenarios runs through the real system and agrees with its expectation.

The real workflow and activities on the time-skipping server, PostgreSQL, localstripe. Each
run's workflow histories are then replayed against the current code (determinism), and saved
when RECORD_HISTORIES names a folder (how tests/workflows/histories was made).
"""
import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from starter.scenario import Scenario
from starter.simulate import SimulationParts, simulate
from tests.scenario_compare import differences
from workflows.subscription import SubscriptionWorkflow

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def load(path: Path) -> tuple[Scenario, dict[str, Any]]:
    raw = yaml.safe_load(path.read_text())
    expected = raw.pop("expect", None)
    if expected is None:
        expected = json.loads(path.with_suffix(".json").read_text())
    return Scenario.model_validate(raw), expected


async def replay(histories: list[WorkflowHistory]) -> None:
    replayer = Replayer(workflows=[SubscriptionWorkflow], data_converter=pydantic_data_converter)
    for history in histories:
        await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_scenario_agrees_with_its_expectation(path: Path, simulation_parts: SimulationParts) -> None:
    scenario, expected = load(path)
    histories: list[WorkflowHistory] = []
    report = asyncio.run(simulate(scenario, simulation_parts, histories))
    assert differences(expected, report) == [], json.dumps(report, indent=1)
    asyncio.run(replay(histories))
    if folder := os.environ.get("RECORD_HISTORIES"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        for i, history in enumerate(histories):
            (Path(folder) / f"{path.stem}-{i:02d}.json").write_text(history.to_json())

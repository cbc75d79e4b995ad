"""Histories recorded by earlier versions of the workflow must replay on the current code.

A change that would break running subscriptions (a new activity call in the middle, a
reordered step) makes this fail: guard it with `workflow.patched`, then record again
(`RECORD_HISTORIES=tests/workflows/histories pytest tests/workflows/test_scenarios.py`),
keeping the old files too.
"""
import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.subscription import SubscriptionWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_recorded_histories() -> None:
    assert len(HISTORIES) >= 10


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_recorded_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=[SubscriptionWorkflow], data_converter=pydantic_data_converter)
    asyncio.run(replayer.replay_workflow(history))

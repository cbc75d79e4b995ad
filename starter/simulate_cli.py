"""The `simulate` command: start the parts it needs, run one scenario file, print JSON."""
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from billing.catalog import CatalogError, parse_catalog
from settings import Settings
from starter.scenario import Scenario


class ScenarioError(ValueError):
    """The scenario file is unusable; the message is one sentence naming the file and the field."""


def simulate_file(settings: Settings, path: str, histories_dir: str | None) -> int:
    try:
        scenario = read_scenario(path)
        if scenario.catalog is not None:  # refused before anything is started
            parse_catalog(scenario.catalog)
    except ScenarioError as exc:
        return _refuse(str(exc))
    except CatalogError as exc:
        return _refuse(f"scenario {path}: catalogue refused: {exc}")
    try:
        report, histories = asyncio.run(_run(settings, scenario, histories_dir is not None))
    except CatalogError as exc:
        return _refuse(f"scenario {path}: catalogue refused: {exc}")
    json.dump(report, sys.stdout, indent=2)
    print()
    if histories_dir:
        folder = Path(histories_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for i, history in enumerate(histories):
            (folder / f"{Path(path).stem}-{i:03d}.json").write_text(history.to_json())
    return 0


def read_scenario(path: str) -> Scenario:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"scenario {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                            f"at offset {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_ScenarioLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {path} is not valid YAML: {_yaml_sentence(exc)}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else "a list" if isinstance(data, list) else "a single value"
        raise ScenarioError(f"scenario {path} is not valid: the top level must be a mapping "
                            f"(until, steps, ...), not {kind}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"scenario {path} is not valid: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """A ValidationError as one line, `loc: msg; loc: msg`, for a person rather than a developer."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"].startswith("date_"):
            message = f"not a valid date ({err['input']})"
        else:
            message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    return _one_line("; ".join(parts))


class NotADate:
    """A YAML timestamp no calendar has (2025-02-30): kept for the models to refuse, naming the field."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


class _ScenarioLoader(yaml.SafeLoader):
    """SafeLoader, except that an impossible date is a NotADate instead of a ValueError traceback."""

    def _timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return NotADate(str(self.construct_scalar(node)))


_ScenarioLoader.add_constructor("tag:yaml.org,2002:timestamp", _ScenarioLoader._timestamp)


def _yaml_sentence(exc: yaml.YAMLError) -> str:
    # PyYAML's own message spans lines and quotes the source; keep the problem and where.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return _one_line(f"{exc.problem or exc.context} (line {mark.line + 1}, column {mark.column + 1})")
    return _one_line(str(exc))


def _refuse(message: str) -> int:
    print(_one_line(message), file=sys.stderr)
    return 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _run(settings: Settings, scenario: Scenario, collect: bool) -> tuple[dict[str, Any], list[Any]]:
    from contextlib import ExitStack

    from embedded.postgres import EmbeddedPostgres
    from embedded.stripe_server import LOCALSTRIPE_KEY, start_localstripe
    from embedded.temporal import test_server_path
    from starter.simulate import SimulationParts, simulate

    with ExitStack() as stack:
        admin_url = settings.database_url
        if admin_url is None:
            postgres = EmbeddedPostgres(settings.data_dir / "postgres")
            stack.callback(postgres.stop)
            admin_url = postgres.url()
        key, base = settings.stripe_api_key, settings.stripe_api_base
        if key is None and base is None:
            local = start_localstripe(settings.data_dir / "logs")
            stack.callback(local.stop)
            base = local.api_base
        parts = SimulationParts(admin_url, key or LOCALSTRIPE_KEY, base, test_server_path())
        histories: list = []
        # E-invoices drawn by a worker process of their own, as in production: the simulation's
        # own process keeps its CPU for the workflows.
        report = await simulate(scenario, parts, histories if collect else None, drawing_apart=True)
        return report, histories

"""The `simulate` command: start the parts it needs, run one scenario file, print JSON."""
import asyncio
import json
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from billing.catalog import CatalogError
from settings import Settings
from starter.scenario import Scenario


def simulate_file(settings: Settings, path: str, histories_dir: str | None) -> int:
    try:
        scenario = Scenario.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        print(f"cannot read scenario {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except (yaml.YAMLError, ValidationError) as exc:
        print(f"scenario {path} is not valid: {exc}", file=sys.stderr)
        return 2
    try:
        report, histories = asyncio.run(_run(settings, scenario, histories_dir is not None))
    except CatalogError as exc:
        print(f"scenario {path}: catalogue refused: {exc}", file=sys.stderr)
        return 2
    json.dump(report, sys.stdout, indent=2)
    print()
    if histories_dir:
        folder = Path(histories_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for i, history in enumerate(histories):
            (folder / f"{Path(path).stem}-{i:03d}.json").write_text(history.to_json())
    return 0


async def _run(settings: Settings, scenario: Scenario, collect: bool):  # type: ignore[no-untyped-def]
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
        report = await simulate(scenario, parts, histories if collect else None)
        return report, histories

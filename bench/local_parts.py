"""The parts a simulation bench runs on: the embedded PostgreSQL (kept in .var/bench), a
localstripe, and the time-skipping server's binary; stopped when `stack` closes."""
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starter.simulate import SimulationParts


def simulation_parts(stack: ExitStack) -> "SimulationParts":
    from embedded.postgres import EmbeddedPostgres
    from embedded.stripe_server import LOCALSTRIPE_KEY, start_localstripe
    from embedded.temporal import test_server_path
    from settings import PROJECT_ROOT
    from starter.simulate import SimulationParts

    postgres = EmbeddedPostgres(PROJECT_ROOT / ".var" / "bench" / "postgres")
    stack.callback(postgres.stop)
    stripe = start_localstripe(Path(tempfile.mkdtemp()))
    stack.callback(stripe.stop)
    return SimulationParts(postgres.url(), LOCALSTRIPE_KEY, stripe.api_base, test_server_path())

"""`python -m starter worker` (what the Dockerfile and docker-compose run) exists and, with no
servers configured, says so in one line and exits 2."""
import pytest

from starter.cli import main


def test_the_worker_command_refuses_to_start_without_its_servers_in_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "STRIPE_API_KEY", "STRIPE_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env file from the work tree
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "TEMPORAL_ADDRESS" in err

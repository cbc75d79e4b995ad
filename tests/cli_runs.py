"""Running `python -m starter …` in-process against the test's database (the CLI tests)."""
import pytest

from starter.cli import main


@pytest.fixture(autouse=True)
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Imported by a test module, every test of it runs the CLI on its own fresh database."""
    monkeypatch.setenv("DATABASE_URL", database_url)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI's exit code, standard output and standard error."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err

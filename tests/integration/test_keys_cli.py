"""`python -m starter firms …` and `operator-key` (R15): a key is printed once, stored hashed,
works until revoked; bad input is one sentence on stderr, exit 2."""
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.api_keys import owner_of
from store.models import ApiKey
from tests.cli_runs import cli_database, run  # noqa: F401  (cli_database: an autouse fixture)

pytestmark = pytest.mark.postgres


def test_a_firm_is_created_with_a_key_shown_once_and_stored_hashed(
        capsys: pytest.CaptureFixture[str], session_factory: sessionmaker[Session]) -> None:
    code, out, _ = run(capsys, "firms", "create", "--name", "Cabinet Martin & Fils")
    created = json.loads(out)
    assert code == 0 and created["id"] == "cabinet-martin-fils"
    with session_factory() as session:
        assert owner_of(session, created["api_key"]).firm_id == "cabinet-martin-fils"  # type: ignore[union-attr]
        stored = session.scalars(select(ApiKey.key_hash)).all()
        assert created["api_key"] not in stored and len(stored) == 1
    code, out, _ = run(capsys, "firms", "revoke-key", "cabinet-martin-fils")
    assert (code, json.loads(out)["revoked"]) == (0, 1)
    with session_factory() as session:
        assert owner_of(session, created["api_key"]) is None


def test_an_operator_key_acts_for_no_firm(capsys: pytest.CaptureFixture[str],
                                          session_factory: sessionmaker[Session]) -> None:
    code, out, _ = run(capsys, "operator-key")
    with session_factory() as session:
        assert code == 0 and owner_of(session, json.loads(out)["api_key"]).firm_id is None  # type: ignore[union-attr]


@pytest.mark.parametrize("argv, says", [
    (("firms", "create", "--name", " "), "--name must have 1 to 200 characters"),
    (("firms", "create", "--name", "X", "--id", "Not Valid"), "--id must be"),
    (("firms", "new-key", "nobody"), "there is no firm 'nobody'"),
    (("firms", "revoke-key", "nobody"), "there is no firm 'nobody'"),
])
def test_bad_input_is_one_sentence_and_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                                              says: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert says in err and len(err.strip().splitlines()) == 1


def test_creating_the_same_firm_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "firms", "create", "--name", "Cabinet A")[0] == 0
    code, _, err = run(capsys, "firms", "create", "--name", "Cabinet A")
    assert code == 2 and "already exists" in err


def test_a_firm_is_created_with_the_address_its_notices_go_to(
        capsys: pytest.CaptureFixture[str], session_factory: sessionmaker[Session]) -> None:
    from store.models import Firm

    code, out, _ = run(capsys, "firms", "create", "--name", "Cabinet Roux", "--email", "compta@cabinet-roux.fr")
    assert code == 0
    with session_factory() as session:
        assert session.get_one(Firm, json.loads(out)["id"]).email == "compta@cabinet-roux.fr"
    code, out, err = run(capsys, "firms", "create", "--name", "Cabinet Blanc", "--email", "not an address")
    assert (code, out, err) == (2, "", "--email must be an address like compta@cabinet.fr\n")

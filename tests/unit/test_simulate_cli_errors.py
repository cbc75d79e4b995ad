"""`python -m starter simulate FILE` answers bad input with one sentence and exit code 2.

None of these may start PostgreSQL, Temporal or Stripe: `_run` is replaced by a tripwire.
"""
from pathlib import Path
from typing import Any

import pytest

import starter.simulate_cli
from starter.cli import main

GOOD_PARTIES = "firms: [{id: cab-1, name: Cabinet}]\nclients:\n  - {id: cli-1, name: Client, firm: cab-1}\n"


@pytest.fixture(autouse=True)
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripwire(*_: object) -> None:
        raise AssertionError("the scenario was run: bad input must be refused before anything starts")

    monkeypatch.setattr(starter.simulate_cli, "_run", tripwire)


def simulate(tmp_path: Path, content: str | bytes) -> int:
    path = tmp_path / "scenario.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return main(["simulate", str(path)])


def refusal(code: int, capsys: pytest.CaptureFixture[str]) -> str:
    """The one line the person reads; fails unless it is one line, exit 2, no traceback."""
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("until", ["2025-13-01", "2025-02-30", "soon"])
def test_an_until_that_is_not_a_date_is_refused_in_one_line_naming_until(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], until: str) -> None:
    line = refusal(simulate(tmp_path, f"until: {until}\n"), capsys)
    assert line.endswith(f"is not valid: until: not a valid date ({until})")


@pytest.mark.parametrize("at", ["2025-02-30", "tomorrow"])
def test_a_step_dated_on_a_day_that_is_not_a_date_is_refused_naming_the_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], at: str) -> None:
    scenario = f"until: 2025-12-01\n{GOOD_PARTIES}steps:\n  - at: {at}\n    cancel: {{client: cli-1}}\n"
    line = refusal(simulate(tmp_path, scenario), capsys)
    assert f"steps.0.at: not a valid date ({at})" in line


def test_a_date_where_the_catalogue_wants_a_feature_is_refused_naming_plan_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = (
        "until: 2025-12-01\ncatalog:\n  - code: essentiel\n    product: einvoicing\n    name: Essentiel\n"
        "    features: [2025-02-30]\n    prices: {monthly: 1900}\n    quota: {monthly: 50}\n"
    )
    line = refusal(simulate(tmp_path, scenario), capsys)
    assert "catalogue refused: plan 'essentiel' (#1): features.0: " in line


def test_a_catalogue_price_stripe_cannot_charge_is_refused_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = (
        "until: 2025-12-01\ncatalog:\n  - code: essentiel\n    product: einvoicing\n    name: Essentiel\n"
        "    prices: {monthly: 10000000000000000000}\n    quota: {monthly: 50}\n"
    )
    line = refusal(simulate(tmp_path, scenario), capsys)
    assert "catalogue refused: plan 'essentiel' (#1): prices.monthly: " in line


def test_a_file_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refusal(simulate(tmp_path, b"\xff\xfe\x00garbage"), capsys)
    assert "is not UTF-8 text" in line


def test_a_file_that_does_not_exist_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refusal(main(["simulate", str(tmp_path / "missing.yaml")]), capsys)
    assert line.startswith("cannot read scenario ") and "missing.yaml" in line


def test_yaml_that_does_not_parse_is_refused_in_one_line_saying_where(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refusal(simulate(tmp_path, "until: 2025-12-01\nsteps: [unclosed\n"), capsys)
    assert "is not valid YAML: " in line and "(line 3, column 1)" in line


@pytest.mark.parametrize(("content", "kind"), [("- a\n- b\n", "a list"), ("just words\n", "a single value"),
                                               ("", "empty")])
def test_a_file_whose_top_level_is_not_a_mapping_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, kind: str) -> None:
    line = refusal(simulate(tmp_path, content), capsys)
    assert line.endswith(f"the top level must be a mapping (until, steps, ...), not {kind}")


def test_several_wrong_values_are_all_named_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = "until: 2025-12-01\ncolour: red\nsteps:\n  - at: 2025-09-01\n    dance: {client: cli-1}\n"
    line = refusal(simulate(tmp_path, scenario), capsys)
    assert "steps.0: a step has `at` and one verb of " in line
    assert "; colour: Extra inputs are not permitted" in line


def test_a_client_of_an_undeclared_firm_is_refused_before_anything_starts_naming_both(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = "until: 2025-12-01\nfirms: [{id: cab-1, name: C}]\nclients: [{id: cli-1, name: X, firm: cab-9}]\n"
    line = refusal(simulate(tmp_path, scenario), capsys)
    assert line.endswith("is not valid: clients: client 'cli-1' names firm 'cab-9', which is not among `firms`")


@pytest.mark.parametrize(
    ("parties", "message"),
    [
        ("firms: [{id: cab-1, name: C}, {id: cab-1, name: D}]\n", "firms: the id 'cab-1' is declared twice"),
        (GOOD_PARTIES + "  - {id: cli-1, name: Other, firm: cab-1}\n", "clients: the id 'cli-1' is declared twice"),
    ],
)
def test_two_firms_or_two_clients_with_the_same_id_are_refused_naming_the_id(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], parties: str, message: str) -> None:
    line = refusal(simulate(tmp_path, f"until: 2025-12-01\n{parties}"), capsys)
    assert line.endswith(f"is not valid: {message}")


def test_a_firm_id_longer_than_the_store_holds_is_refused_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refusal(simulate(tmp_path, f"until: 2025-12-01\nfirms: [{{id: {'c' * 65}, name: C}}]\n"), capsys)
    assert "firms.0.id: String should have at most 64 characters" in line


def test_a_step_naming_an_undeclared_client_is_left_for_the_run_to_refuse(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A legitimate scenario: the system must refuse the step at run time and the report says so.
    ran: list[Any] = []

    async def fake_run(_settings: object, scenario: object, _collect: bool) -> tuple[dict[str, Any], list[Any]]:
        ran.append(scenario)
        return {"errors": []}, []

    monkeypatch.setattr(starter.simulate_cli, "_run", fake_run)
    scenario = f"until: 2025-12-01\n{GOOD_PARTIES}steps:\n  - at: 2025-09-01\n    cancel: {{client: cli-404}}\n"
    assert simulate(tmp_path, scenario) == 0
    assert len(ran) == 1
    assert capsys.readouterr().err == ""

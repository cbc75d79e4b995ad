"""The comparison the scenario tests rely on must itself catch what it claims to."""
import copy

from tests.scenario_compare import differences

REPORT = {
    "invoices": [
        {"number": "F-00000001", "client": "cli-1", "payer": "firm:cab-1", "issued_on": "2025-09-01",
         "lines": [{"kind": "subscription", "plan": "essentiel", "period_start": "2025-09-01",
                    "period_end": "2025-10-01", "quantity": 1, "amount": 1900}],
         "subtotal": 1900, "tax": 380, "total": 2280, "status": "paid"},
        {"number": "F-00000002", "client": "cli-2", "payer": "firm:cab-1", "issued_on": "2025-09-01",
         "lines": [], "subtotal": 0, "tax": 0, "total": 0, "status": "paid"},
    ],
    "subscriptions": [{"client": "cli-1", "line": "einvoicing", "plan": "essentiel", "interval": "monthly",
                       "payer": "firm:cab-1", "status": "active"}],
    "errors": [{"step": 3, "error": "no period"}],
}


def test_identical_reports_agree() -> None:
    assert differences(REPORT, REPORT) == []


def test_same_date_invoices_may_come_in_any_order() -> None:
    swapped = copy.deepcopy(REPORT)
    swapped["invoices"].reverse()
    for i, inv in enumerate(swapped["invoices"], 1):
        inv["number"] = f"F-{i:08d}"
    assert differences(REPORT, swapped) == []


def test_a_wrong_amount_is_caught() -> None:
    wrong = copy.deepcopy(REPORT)
    wrong["invoices"][0]["lines"][0]["amount"] = 1901
    assert any("missing invoice" in p for p in differences(REPORT, wrong))


def test_a_gap_in_numbers_is_caught() -> None:
    gap = copy.deepcopy(REPORT)
    gap["invoices"][1]["number"] = "F-00000003"
    assert any("rise by one" in p for p in differences(REPORT, gap))


def test_a_missing_refusal_or_state_is_caught() -> None:
    other = copy.deepcopy(REPORT)
    other["errors"] = []
    other["subscriptions"][0]["status"] = "ended"
    problems = differences(REPORT, other)
    assert any("refused steps" in p for p in problems)
    assert any("missing subscription" in p for p in problems)


def test_a_refusal_without_a_sentence_is_caught() -> None:
    silent = copy.deepcopy(REPORT)
    silent["errors"][0]["error"] = " "
    assert any("without a reason" in p for p in differences(REPORT, silent))

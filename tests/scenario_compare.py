"""Our own comparison of a simulation report with an expected one (the scenario contract).

Invoices are compared by issue date, as a multiset within a date (same-date order is free),
with their lines as a multiset; numbers must rise by exactly one in issue order; the
subscriptions' final states as a multiset; refused steps by index, each with a sentence.
"""
import re
from collections import Counter
from typing import Any

INVOICE_FIELDS = ("client", "payer", "issued_on", "subtotal", "tax", "total", "status")
LINE_FIELDS = ("kind", "plan", "period_start", "period_end", "quantity", "amount")
SUBSCRIPTION_FIELDS = ("client", "line", "plan", "interval", "payer", "status", "ended_on", "ended_reason")


def _invoice_key(invoice: dict[str, Any]) -> tuple[Any, ...]:
    lines = tuple(sorted(tuple(str(line.get(f)) for f in LINE_FIELDS) for line in invoice.get("lines", [])))
    return tuple(str(invoice.get(f)) for f in INVOICE_FIELDS) + (lines,)


def _subscription_key(sub: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(sub.get(f)) for f in SUBSCRIPTION_FIELDS)


def _trailing_number(number: Any) -> int | None:
    found = re.search(r"(\d+)\D*$", str(number))
    return int(found.group(1)) if found else None


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    invoices = actual.get("invoices", [])
    dates = [inv.get("issued_on") for inv in invoices]
    if dates != sorted(dates):
        problems.append(f"invoices out of issue-date order: {dates}")
    want, got = Counter(map(_invoice_key, expected.get("invoices", []))), Counter(map(_invoice_key, invoices))
    for key in sorted(want - got, key=str):
        problems.append(f"missing invoice {key}")
    for key in sorted(got - want, key=str):
        problems.append(f"unexpected invoice {key}")
    numbers = [_trailing_number(inv.get("number")) for inv in invoices]
    if None in numbers or any(b != a + 1 for a, b in zip(numbers, numbers[1:], strict=False)):  # type: ignore[operator]
        problems.append(f"invoice numbers do not rise by one: {[inv.get('number') for inv in invoices]}")
    want_s = Counter(map(_subscription_key, expected.get("subscriptions", [])))
    got_s = Counter(map(_subscription_key, actual.get("subscriptions", [])))
    for key in sorted(want_s - got_s):
        problems.append(f"missing subscription {key}")
    for key in sorted(got_s - want_s):
        problems.append(f"unexpected subscription {key}")
    want_e = sorted(e["step"] for e in expected.get("errors", []))
    got_e = sorted(e.get("step") for e in actual.get("errors", []))
    if want_e != got_e:
        problems.append(f"refused steps: expected {want_e}, got {got_e}: {actual.get('errors')}")
    problems += [f"step {e.get('step')} refused without a reason" for e in actual.get("errors", [])
                 if not str(e.get("error", "")).strip()]
    return problems

"""Renewal day under kill -9, small (issue 10): bench/renewal_storm.py SIGKILLs the worker twice
during a storm of renewals on the real dev server, PostgreSQL and localstripe; afterwards every
subscription has exactly one renewal invoice, every invoice exactly one succeeded PaymentIntent,
invoice numbers have no gap, and reconcile finds nothing wrong."""
import json
import subprocess
import sys

from settings import PROJECT_ROOT


def test_a_renewal_storm_survives_two_sigkills_of_its_worker_with_nothing_charged_twice_or_missing() -> None:
    done = subprocess.run([sys.executable, "bench/renewal_storm.py", "--storm", "40", "--live", "0", "--kill-worker", "2"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kills"] == 2
    checks = result["checks"]
    assert checks["subscriptions_renewed"] == 40
    assert checks["missing_renewals"] == 0
    assert checks["subscriptions_with_two_renewal_invoices"] == 0
    assert checks["invoices_by_succeeded_intents"] == {"1": 40}
    assert checks["invoice_numbers"]["gaps"] == 0
    assert checks["reconcile"] == "all agree"

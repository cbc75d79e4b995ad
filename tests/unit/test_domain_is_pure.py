import subprocess
import sys

FORBIDDEN = ("temporalio", "sqlalchemy", "psycopg", "stripe", "httpx", "aiohttp", "requests")


def test_importing_the_billing_domain_loads_no_io_framework() -> None:
    code = (
        "import sys, billing, billing.catalog, billing.periods, billing.proration, "
        "billing.quota, billing.invoices, billing.money;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

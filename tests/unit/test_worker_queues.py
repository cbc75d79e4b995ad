"""WORKER_QUEUES: which task queues a worker process polls (issue 10, docs/scaling.md §4)."""
import subprocess
import sys

import pytest
from pydantic import ValidationError

from settings import PROJECT_ROOT, Settings, parse_queues
from worker import WorkerTuning

DRAWING_LIBRARIES = ("fpdf", "fontTools", "pypdf", "facturx")


def test_queues_are_named_in_any_order_and_kept_in_ours() -> None:
    assert parse_queues("documents, subscriptions") == ("subscriptions", "documents")
    assert parse_queues("payments,payments") == ("payments",)
    assert Settings().worker_tuning().queues == ("subscriptions", "payments", "documents")


@pytest.mark.parametrize(("value", "message"), [
    ("subscriptions,invoices", "invoices: not a queue; choose among subscriptions, payments, documents"),
    (" , ", "nothing: not a queue"),
])
def test_an_unknown_queue_is_refused_with_the_names_it_takes(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(worker_queues=value)


def test_database_connections_follow_the_queues_polled() -> None:
    tuning = WorkerTuning(activity_threads=16, payment_threads=8, document_threads=2)
    assert tuning.database_connections == 26
    assert WorkerTuning(document_threads=3, queues=("documents",)).database_connections == 3


def test_the_worker_module_does_not_load_the_drawing_libraries() -> None:
    """A worker that does not poll the documents queue never pays their ~35 MB (measured:
    `import worker` 103 MB of RSS, 136 MB with them)."""
    probe = ("import sys, worker; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {DRAWING_LIBRARIES!r}))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_documents_only_worker_needs_neither_stripe_nor_our_identity() -> None:
    from worker import missing_settings

    endpoints = {"database_url": "postgresql+psycopg://db/billing", "temporal_address": "temporal:7233"}
    assert missing_settings(Settings(**endpoints, worker_queues="documents", stripe_api_key=None,
                                     stripe_api_base=None)) is None
    refused = missing_settings(Settings(**endpoints, worker_queues="payments", stripe_api_key=None,
                                        stripe_api_base=None))
    assert refused is not None and "STRIPE_API_KEY" in refused
    refused = missing_settings(Settings(**endpoints, stripe_api_key="sk_live_x"))  # every queue, demo seller
    assert refused is not None and "SELLER_NAME, SELLER_SIREN and SELLER_VAT_NUMBER" in refused
    assert missing_settings(Settings(worker_queues="documents", stripe_api_key=None, stripe_api_base=None,
                                     database_url=None, temporal_address="temporal:7233")) == (
        "the worker needs DATABASE_URL and TEMPORAL_ADDRESS; `python -m starter run` starts an embedded stack instead")

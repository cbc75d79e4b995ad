"""Logs are JSON lines carrying the ids they concern (observability/logs.py)."""
import json
import logging

from observability.logs import JsonLines, configure_logging


def record(message: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("billing", logging.INFO, __file__, 1, message, None, None)
    rec.__dict__.update(extra)
    return rec


def test_a_log_line_is_json_with_our_ids() -> None:
    line = json.loads(JsonLines().format(record("renewed until 2026-01-01", firm_id="cab-1", client_id="cli-1",
                                                subscription_id="cli-1.einvoicing")))
    assert line["message"] == "renewed until 2026-01-01"
    assert (line["level"], line["logger"]) == ("info", "billing")
    assert (line["firm_id"], line["client_id"], line["subscription_id"]) == ("cab-1", "cli-1",
                                                                               "cli-1.einvoicing")


def test_the_temporal_sdks_workflow_and_activity_context_become_ids() -> None:
    activity = {"activity_type": "charge_invoice", "workflow_id": "subscription-cli-1-einvoicing", "run_id": "r1"}
    line = json.loads(JsonLines().format(record("charge", temporal_activity=activity, invoice=42)))
    assert line["workflow_id"] == "subscription-cli-1-einvoicing"
    assert (line["run_id"], line["activity"], line["invoice"]) == ("r1", "charge_invoice", 42)


def test_french_text_stays_readable_and_errors_keep_their_traceback() -> None:
    try:
        raise ValueError("carte refusée")
    except ValueError:
        import sys

        rec = record("échec", exc_info=sys.exc_info())
    line = json.loads(JsonLines().format(rec))
    assert line["message"] == "échec"
    assert "ValueError: carte refusée" in line["error"]


def test_libraries_that_log_every_step_of_an_e_invoice_are_kept_to_warnings() -> None:
    import logging

    configure_logging("json", "INFO")
    assert logging.getLogger("fontTools.subset").getEffectiveLevel() == logging.WARNING  # a line per glyph
    assert logging.getLogger("factur-x").getEffectiveLevel() == logging.WARNING

"""Logs as JSON lines on stderr, each carrying the ids it concerns (firm, client, subscription,
workflow), so one grep or one log query follows a subscription across the worker and the API."""
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

IDS = ("firm_id", "client_id", "subscription_id", "invoice", "notice_id", "workflow_id", "run_id", "activity")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(ids_of(record))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def ids_of(record: logging.LogRecord) -> dict[str, Any]:
    """Our ids given as `extra`, and those the Temporal SDK's loggers attach."""
    ids = {key: getattr(record, key) for key in IDS if getattr(record, key, None) is not None}
    temporal = getattr(record, "temporal_workflow", None) or getattr(record, "temporal_activity", None)
    if isinstance(temporal, dict):
        ids.setdefault("workflow_id", temporal.get("workflow_id"))
        ids.setdefault("run_id", temporal.get("run_id"))
        if "activity_type" in temporal:
            ids.setdefault("activity", temporal["activity_type"])
    return {key: value for key, value in ids.items() if value is not None}


def configure_logging(log_format: Literal["json", "text"] = "json", level: str = "INFO") -> None:
    """Once per process, before anything logs."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # fontTools logs every glyph of every font it subsets (each invoice drawn), factur-x each step.
    for noisy in ("httpx", "stripe", "uvicorn.access", "aiosmtpd", "mail.log", "fontTools", "factur-x"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""The product's own counters, beside the Temporal SDK's, on the worker's Prometheus endpoint.

Everything the worker process counts goes through the Temporal runtime's meter, so one
`/metrics` (METRICS_ADDRESS) shows the SDK's metrics (task latencies, polls, failures) and ours.
Workflows count with `workflow.metric_meter()` instead, which counts nothing while replaying.
The API process counts with prometheus_client (starter/api_metrics.py).
"""
import logging
from typing import Final

from temporalio.common import MetricCounter, MetricMeter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

# name -> help; one place, so a dashboard can be written from this list.
COUNTERS: Final = {
    "billing_renewals": "subscription periods renewed",
    "billing_charges": "charges by outcome (paid, declined, action_required, waiting, error)",
    "billing_declines": "charges the card's bank declined",
    "billing_invoices_issued": "invoices numbered and issued",
    "billing_invoice_documents": "Factur-X e-invoices rendered and stored",
    "billing_emails_sent": "e-mails the SMTP server accepted",
    "billing_emails_failed": "e-mails not sent, by reason (smtp_down, deferred, no_address, refused)",
}

# The process runtime's counters by name, and under "runtime" the runtime they belong to.
_counters: dict[str, MetricCounter | Runtime] = {}


def install_runtime(metrics_address: str | None = None, core_log_level: int = logging.WARNING) -> Runtime:
    """The process's Temporal runtime: core logs forwarded to Python logging, and, with an
    address, a Prometheus endpoint there (http://ADDRESS/metrics). Call before connecting."""
    logger = logging.getLogger("temporalio.core")
    logger.setLevel(core_log_level)
    runtime = Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                              forwarding=LogForwardingConfig(logger=logger)),
        metrics=PrometheusConfig(bind_address=metrics_address, counters_total_suffix=True)
        if metrics_address else None,
    ))
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime


def count(name: str, value: int = 1, meter: MetricMeter | None = None, **attributes: str) -> None:
    """Add to one of COUNTERS: on `meter` (a workflow's, which counts nothing while replaying),
    or on the process runtime's (its counters made once, kept per runtime)."""
    if meter is not None:
        meter.create_counter(name, COUNTERS[name]).add(value, attributes or None)
        return
    runtime = Runtime.default()
    if _counters.get("runtime") is not runtime:  # installed anew (tests): counters on the new one
        _counters.clear()
        _counters["runtime"] = runtime
    counter = _counters.get(name)
    if counter is None:
        counter = _counters[name] = runtime.metric_meter.create_counter(name, COUNTERS[name])
    assert isinstance(counter, MetricCounter)
    counter.add(value, attributes or None)

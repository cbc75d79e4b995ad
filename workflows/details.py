"""What an operator reads of a subscription in the Temporal UI: the start-time summary (one
line in the workflow list), the current details (markdown, on the workflow's page) and the
activities' summaries ("charge F-00000042, 22,80 €"). Pure functions of the state: the workflow
sets them, deterministically, whenever the state changes."""
from datetime import date, datetime

from billing.money import format_eur_fr
from contracts.subscription import NewSubscription, SubscriptionState


def start_summary(new: NewSubscription) -> str:
    """Fixed for the run's life (plan and payer may change since: see the current details)."""
    return (f"{new.client_id} · {new.line.value} · firm {new.firm_id} · started on {new.plan.name} "
            f"{new.interval.value}, paid by {new.payer.label}")


def start_details(new: NewSubscription) -> str:
    return (f"Subscription `{new.subscription_id}` of client **{new.client_id}** (firm {new.firm_id}), "
            f"line {new.line.value}: started on plan {new.plan.name} (`{new.plan.code}`), {new.interval.value}, "
            f"{format_eur_fr(new.plan.price(new.interval))} excl. VAT, paid by {new.payer.label}.\n\n"
            "What it is now (plan, status, period, usage, open invoices) is under **Current Details**.")


def current_details(s: SubscriptionState, used: int | None, used_as_of: date | None,
                    charging: list[str], now: datetime) -> str:
    """The subscription at a glance, as a markdown table."""
    rows = [
        ("Status", f"**{s.status.value}**" + (f" ({s.ended_reason.value})" if s.ended_reason else "")),
        ("Client", f"{s.client_id} (firm {s.firm_id})"),
        ("Plan", f"{s.plan.name} (`{s.plan.code}`), {s.interval.value}, "
                 f"{format_eur_fr(s.plan.price(s.interval))} excl. VAT"),
        ("Payer", s.payer.label),
        ("Period", f"{s.period_start} → {s.period_end}"),
        ("Used / quota", (f"{used} / {s.quota} documents (as of {used_as_of})" if used is not None
                          else f"? / {s.quota} documents")),
    ]
    if s.ended_on is not None:
        rows.append(("Ended on", str(s.ended_on)))
    elif s.ending:
        rows.append(("Ends on", f"{s.period_end} (not renewed"
                                + (f"; {s.take_over.label} takes over" if s.take_over else "") + ")"))
    else:
        rows.append(("Next renewal", f"{s.period_end} 00:00 Europe/Paris"))
    scheduled = []
    if s.scheduled_plan is not None:
        scheduled.append(f"plan {s.scheduled_plan.name} from {s.period_end}")
    if s.scheduled_interval is not None:
        scheduled.append(f"{s.scheduled_interval.value} from {s.period_end}")
    rows.append(("Scheduled", "; ".join(scheduled) or "none"))
    open_invoices = [
        f"{d.number}{_amount(d.total)}: declined, attempt {d.attempts}"
        + (f", next retry {retry:%Y-%m-%d %H:%M} UTC" if (retry := d.next_retry_at(s.retry_days)) else ", last retry")
        for d in s.dunning
    ] + [f"{d.number}{_amount(d.total)}: on hold (Stripe refused the request), waits for a new card"
         for d in s.on_hold]
    open_invoices += [f"{number}: charging now" for number in charging]
    rows.append(("Unpaid", "<br>".join(open_invoices) or "none"))
    if s.alerts:
        last = s.alerts[-1]
        rows.append(("Last alert", f"{last.at:%Y-%m-%d %H:%M} {last.step}: {last.error}"))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"### {s.client_id} · {s.line.value}\n\n| | |\n|---|---|\n{table}\n\n_updated {now:%Y-%m-%d %H:%M} UTC_"


def charge_summary(number: str, total: int | None, attempt_no: int) -> str:
    retry = "" if attempt_no == 1 else f", attempt {attempt_no}"
    return f"charge {number}{_amount(total)}{retry}"


def _amount(total: int | None) -> str:
    return "" if total is None else f", {format_eur_fr(total)}"

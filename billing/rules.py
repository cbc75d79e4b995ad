"""Who may subscribe to what, and which changes a subscription accepts (R2, R7–R10).

Each check raises `Refused` with a sentence for the person who asked; nothing here does I/O.
"""
from collections.abc import Collection

from billing.catalog import Plan
from billing.intervals import Interval, Line, Product


class Refused(ValueError):
    """A request that breaks a rule; the message says why, for a person."""


PAYER_KINDS = ("firm", "client")


def check_new_subscription(plan: Plan, interval: Interval, payer_kind: str, occupied: Collection[Line]) -> None:
    """R2: interval offered, payer allowed for the product, every line the plan needs free."""
    if payer_kind not in PAYER_KINDS:
        raise Refused(f"payer must be 'firm' or 'client', not '{payer_kind}'")
    if not plan.offers(interval):
        offered = ", ".join(i.value for i in plan.prices)
        raise Refused(f"plan '{plan.code}' is not offered {interval.value} (only {offered})")
    if payer_kind == "firm" and plan.product is not Product.EINVOICING:
        raise Refused(
            f"plan '{plan.code}' is a {plan.product.value} plan: it is always paid by the client, "
            "a firm can pay only for e-invoicing"
        )
    taken = [line.value for line in plan.lines if line in occupied]
    if taken:
        raise Refused(f"the client already has a live subscription on the {' and '.join(taken)} line")


def check_plan_change(current: Plan, target: Plan, interval: Interval) -> None:
    """R7/R8: a change stays on the same product and in an interval the new plan offers."""
    if target.product is not current.product:
        raise Refused(
            f"plan '{target.code}' is a {target.product.value} plan and the subscription is "
            f"{current.product.value}: cancel it and subscribe to change product"
        )
    if not target.offers(interval):
        raise Refused(f"plan '{target.code}' is not offered {interval.value}")


def check_interval_switch(plan: Plan, interval: Interval) -> None:
    """R9: the plan in force at the next renewal must offer the new interval."""
    if not plan.offers(interval):
        raise Refused(f"plan '{plan.code}' is not offered {interval.value}")

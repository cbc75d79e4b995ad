"""The HTTP API: the /v1 routes backend services call (starter/api_routes.py), Stripe's
webhook (payments that settle after the charge) and health. OpenAPI at /openapi.json, docs at /docs.

The webhook trusts nothing in the payload but its signature and the id it names: the
PaymentIntent is fetched again from Stripe, so events arriving late, twice or out of order
change nothing wrong. It is not fetched when nothing can change: an event that settles
nothing, an intent that is not ours, or one our records already hold as succeeded (final).
"""
import asyncio
from collections.abc import Awaitable, Callable

import stripe
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapters.stripe_gateway import StripeGateway
from billing.statuses import AttemptStatus, InvoiceStatus
from starter.api_documents import install_document_errors
from starter.api_errors import install as install_problem_handlers
from starter.api_errors import problem
from starter.api_metrics import ApiMetrics
from starter.api_routes import v1_router
from starter.idempotency import IdempotencyMiddleware
from starter.portal import Portal
from store.models import Invoice, PaymentAttempt
from store.payments import apply_intent

OnSettled = Callable[[Invoice], Awaitable[None]]
# Events that tell of no settlement (docs/production.md subscribes to the others only).
UNSETTLING_EVENTS = frozenset({"payment_intent.created", "payment_intent.partially_funded",
                               "payment_intent.amount_capturable_updated"})


def create_app(sessions: sessionmaker[Session], gateway: StripeGateway, webhook_secret: str | None,
               on_settled: OnSettled | None = None, *, portal: Portal | None = None) -> FastAPI:
    app = FastAPI(title="Cabinet billing", version="0.2.0",
                  description="Subscriptions that accounting firms manage for their clients (R1–R17). "
                              "Every call carries `Authorization: Bearer <API key>`; every POST and PUT "
                              "may carry an `Idempotency-Key`.")
    install_problem_handlers(app)
    install_document_errors(app)
    metrics = ApiMetrics()
    if portal is not None:
        app.include_router(v1_router(portal, sessions, metrics))
        app.add_middleware(IdempotencyMiddleware, sessions=sessions)

    metrics.install(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/stripe/webhook", include_in_schema=False)  # Stripe's, not the backend services' API
    async def stripe_webhook(request: Request) -> JSONResponse:
        if not webhook_secret:
            return _error(503, "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")
        payload = await request.body()
        try:
            event = stripe.Webhook.construct_event(payload, request.headers.get("stripe-signature"), webhook_secret)
        except stripe.SignatureVerificationError:
            return _error(400, "missing or bad Stripe signature: event refused")
        except ValueError:
            return _error(400, "the body is not a Stripe event")
        if not event.type.startswith("payment_intent."):
            return JSONResponse({"status": "ignored", "reason": f"{event.type} is not handled"})
        if event.type in UNSETTLING_EVENTS:  # nothing settles: not worth a request to Stripe
            return JSONResponse({"status": "ignored", "reason": f"{event.type} settles nothing"})
        intent_id = event.to_dict().get("data", {}).get("object", {}).get("id")
        if not isinstance(intent_id, str):
            return _error(400, "the event names no payment intent")
        # Read from Stripe only what may change our records: every read counts against Stripe's
        # limit on renewal day (docs/scaling.md §3), and the charge usually settles first.
        known = await asyncio.to_thread(_attempt_of, sessions, intent_id)
        if known is None:
            return JSONResponse({"status": "ignored", "reason": f"{intent_id} is not one of our payments"})
        if known[0] == AttemptStatus.SUCCEEDED:  # final on Stripe too: the event can only repeat it
            return JSONResponse({"status": "paid", "invoice": known[1]})
        view = await asyncio.to_thread(gateway.retrieve_intent, intent_id)
        outcome, invoice = await asyncio.to_thread(_apply, sessions, view.id, view.status,
                                                   view.failure_code, view.failure_message)
        if invoice is None:
            return JSONResponse({"status": "ignored", "reason": f"{intent_id} is not one of our payments"})
        if outcome == "newly_paid" and on_settled is not None:
            await on_settled(invoice)
        return JSONResponse({"status": outcome, "invoice": invoice.display_number})

    return app


def _attempt_of(sessions: sessionmaker[Session], intent_id: str) -> tuple[str, str | None] | None:
    """Our attempt's status for this intent, and its invoice's number; None if it is not ours."""
    with sessions() as session:
        row = session.execute(
            select(PaymentAttempt.status, Invoice)
            .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
            .where(PaymentAttempt.stripe_payment_intent_id == intent_id)
        ).one_or_none()
        return None if row is None else (row[0], row[1].display_number)


def _apply(sessions: sessionmaker[Session], intent_id: str, status: str, code: str | None,
           message: str | None) -> tuple[str, Invoice | None]:
    with sessions.begin() as session:
        attempt = session.scalars(
            select(PaymentAttempt).where(PaymentAttempt.stripe_payment_intent_id == intent_id).with_for_update()
        ).one_or_none()
        if attempt is None:
            return "ignored", None
        invoice = session.get_one(Invoice, attempt.invoice_id, with_for_update=True)
        was_paid = invoice.status == InvoiceStatus.PAID
        outcome = apply_intent(session, attempt, status, code, message)
        return ("newly_paid" if outcome == "paid" and not was_paid else outcome), invoice


def _error(status: int, message: str) -> JSONResponse:
    return problem(status, "Webhook refused" if status < 500 else "Webhook unavailable", message)

"""Collecting an invoice through Stripe, exactly once whatever crashes (R4, R11, R16).

The attempt, with the invoices it collects and its amount, is recorded before Stripe is
called; the PaymentIntent is created unconfirmed and its id stored before it is confirmed; a
retry reads the stored attempt before doing anything. So a crash at any step leaves at most
an unconfirmed intent, never a second charge, even on a Stripe-compatible server that
ignores idempotency keys.

R16: a charge takes along the payer's invoices that wait below the minimum (one PaymentIntent,
all paid together); an invoice whose charge, waiting ones included, stays below the minimum
is not charged: it waits, open, for the payer's next charge.
"""
from collections.abc import Sequence

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import unrecoverable_errors_classified
from adapters.stripe_gateway import IntentView, RequestRefused, StripeGateway
from billing.money import format_eur
from billing.statuses import AttemptStatus, ChargeResult, InvoiceStatus
from contracts.activities import ChargeInvoice, ChargeOutcome
from observability.metrics import count
from store.alerts import raise_alert
from store.models import Invoice, PaymentAttempt, PaymentAttemptInvoice, PaymentCustomer
from store.notifications import queue_notice
from store.payments import apply_intent, end_attempt

DEFAULT_MINIMUM_CHARGE = 50  # R16: Stripe charges nothing below €0.50


class PaymentActivities:
    def __init__(self, session_factory: sessionmaker[Session], gateway: StripeGateway,
                 minimum_charge: int = DEFAULT_MINIMUM_CHARGE) -> None:
        self._sessions = session_factory
        self._gateway = gateway
        self._minimum = minimum_charge

    @activity.defn
    @unrecoverable_errors_classified
    def charge_invoice(self, request: ChargeInvoice) -> ChargeOutcome:
        key = f"invoice-{request.invoice_id}-attempt-{request.attempt_no}"
        try:
            outcome = self._charge(request, key)
        except RequestRefused as exc:
            outcome = self._refused(request, key, exc)
        count("billing_charges", outcome=outcome.status.value)
        if outcome.status is ChargeResult.DECLINED:
            count("billing_declines")
        activity.logger.info("charge of invoice %s, attempt %s: %s%s", request.invoice_id, request.attempt_no,
                             outcome.status.value, f" ({outcome.failure_message})" if outcome.failure_message else "",
                             extra={"invoice": request.invoice_id})
        return outcome

    def _charge(self, request: ChargeInvoice, key: str) -> ChargeOutcome:
        earlier = self._before_a_new_attempt(request.invoice_id, key)
        if earlier is not None:
            return earlier
        with self._sessions.begin() as session:
            opened = self._open_attempt(session, request, key)
            if isinstance(opened, ChargeOutcome):
                return opened
            attempt = opened
            if attempt.status != AttemptStatus.PENDING:
                return _outcome_of(attempt)
            customer = session.get(PaymentCustomer, attempt_payer(session, attempt))
            if customer is None or customer.default_payment_method is None:
                return self._settle(session, attempt, request, IntentView(
                    "", "requires_payment_method", attempt.amount, "no_card", "no card on file"))
            attempt.stripe_customer_id = customer.stripe_customer_id
            attempt_id, intent_id, amount = attempt.id, attempt.stripe_payment_intent_id, attempt.amount
            customer_id, method = customer.stripe_customer_id, customer.default_payment_method

        ours = False  # created by this execution: unconfirmed, no need to read it back first
        if intent_id is None:
            activity.heartbeat("creating the payment intent")
            created = self._gateway.create_intent(
                amount=amount, customer_id=customer_id, payment_method=method,
                invoice_id=request.invoice_id, idempotency_key=key,
            )
            intent_id = self._store_intent(attempt_id, created)
            ours = intent_id == created
            if not ours:  # a concurrent execution stored its own first: ours never runs
                self._gateway.cancel_intent(created)

        activity.heartbeat(f"confirming {intent_id}")
        # An intent this execution created is confirmed without being read back first (one
        # Stripe request fewer a charge: docs/scaling.md §3).
        view = self._confirm(intent_id) if ours else self._confirm_stored(intent_id)
        with self._sessions.begin() as session:
            attempt = session.get_one(PaymentAttempt, attempt_id, with_for_update=True)
            return self._settle(session, attempt, request, view)

    def _confirm_stored(self, intent_id: str) -> IntentView:
        """An intent an earlier execution stored (it may have confirmed it before dying): read
        it, and confirm it only if nobody did."""
        view = self._gateway.retrieve_intent(intent_id)
        return self._confirm(intent_id) if view.status == "requires_confirmation" else view

    def _confirm(self, intent_id: str) -> IntentView:
        """Confirm; should another execution of this attempt (one that outlived its timeout)
        have confirmed it meanwhile, Stripe refuses a second confirm: what it did is read and
        settled, never taken for a refusal (that would put a paid invoice on hold). An intent
        whose payment failed has no payment method left, so a late confirm cannot retry the card."""
        try:
            return self._gateway.confirm_intent(intent_id)
        except RequestRefused:
            view = self._gateway.retrieve_intent(intent_id)
            if view.status == "requires_confirmation":
                raise  # refused for a reason of its own (R11: alerted)
            return view

    def _open_attempt(self, session: Session, request: ChargeInvoice, key: str) -> PaymentAttempt | ChargeOutcome:
        """The attempt for `key`, recorded with what it collects; or why nothing is charged."""
        attempt = session.scalars(
            select(PaymentAttempt).where(PaymentAttempt.idempotency_key == key).with_for_update()
        ).one_or_none()
        if attempt is not None:
            return attempt
        invoice = session.get_one(Invoice, request.invoice_id, with_for_update=True)
        if invoice.status == InvoiceStatus.PAID:
            return ChargeOutcome(status=ChargeResult.PAID)
        if invoice.status != InvoiceStatus.OPEN:
            return ChargeOutcome(status=ChargeResult.DECLINED, failure_code=invoice.status,
                                 failure_message=f"invoice {invoice.display_number} is {invoice.status}")
        if invoice.collecting_attempt_id is not None:
            # Taken along by another of the payer's charges (R16), still in flight: retried
            # until that one settles it (paid) or lets it go.
            raise RuntimeError(f"invoice {invoice.display_number} is being collected by attempt "
                               f"{invoice.collecting_attempt_id}")
        waiting = list(session.scalars(
            select(Invoice).where(
                Invoice.payer_kind == invoice.payer_kind, Invoice.payer_id == invoice.payer_id,
                Invoice.status == InvoiceStatus.OPEN, Invoice.waiting_since.is_not(None),
                Invoice.collecting_attempt_id.is_(None), Invoice.id != invoice.id,
            ).order_by(Invoice.id).with_for_update()
        ))
        amount = invoice.total + sum(w.total for w in waiting)
        if amount < self._minimum:  # R16: not a decline; the payer's next charge takes it along
            if invoice.waiting_since is None:
                invoice.waiting_since = request.business_date
            return ChargeOutcome(status=ChargeResult.WAITING)
        attempt = PaymentAttempt(invoice_id=invoice.id, attempt_no=request.attempt_no, idempotency_key=key,
                                 amount=amount, currency=invoice.currency, status=AttemptStatus.PENDING)
        session.add(attempt)
        session.flush()
        for collected in [invoice, *waiting]:
            session.add(PaymentAttemptInvoice(attempt_id=attempt.id, invoice_id=collected.id, amount=collected.total))
            collected.collecting_attempt_id = attempt.id
        session.flush()
        return attempt

    def _before_a_new_attempt(self, invoice_id: int, key: str) -> ChargeOutcome | None:
        """Before the first execution of an attempt (one read, then Stripe only if needed):

        - R16 with 3-D Secure: the payer's waiting invoices held by an attempt that waits for
          authentication, whose own invoice will never be tried again (written off, or paid
          another way), are freed for this charge: that intent is cancelled first (or, if the
          payer authenticated it meanwhile, recorded as the payment it is);
        - an earlier attempt of this invoice still waiting for 3-D Secure is cancelled, so the
          payer authenticating it later cannot charge the invoice a second time; one the payer
          already authenticated pays the invoice (PAID returned: no new attempt is made)."""
        with self._sessions() as session:
            if session.scalar(select(PaymentAttempt.id).where(PaymentAttempt.idempotency_key == key)) is not None:
                return None  # a retry: the attempt is recorded, _open_attempt resumes it
            invoice = session.get_one(Invoice, invoice_id)
            abandoned = session.execute(
                select(PaymentAttempt.id, PaymentAttempt.stripe_payment_intent_id)
                .join(Invoice, Invoice.id == PaymentAttempt.invoice_id)
                .where(PaymentAttempt.status == AttemptStatus.REQUIRES_ACTION,
                       Invoice.status != InvoiceStatus.OPEN,
                       PaymentAttempt.id.in_(select(Invoice.collecting_attempt_id).where(
                           Invoice.payer_kind == invoice.payer_kind, Invoice.payer_id == invoice.payer_id,
                           Invoice.status == InvoiceStatus.OPEN, Invoice.waiting_since.is_not(None))))
            ).all()
            waiting = session.execute(
                select(PaymentAttempt.id, PaymentAttempt.stripe_payment_intent_id)
                .join(PaymentAttemptInvoice, PaymentAttemptInvoice.attempt_id == PaymentAttempt.id)
                .where(PaymentAttemptInvoice.invoice_id == invoice_id,
                       PaymentAttempt.status == AttemptStatus.REQUIRES_ACTION)
            ).all()
        self._cancel_or_record(abandoned)
        handled = {attempt_id for attempt_id, _ in abandoned}  # one may hold this invoice too: done above
        waiting = [row for row in waiting if row[0] not in handled]
        return ChargeOutcome(status=ChargeResult.PAID) if self._cancel_or_record(waiting) else None

    def _cancel_or_record(self, attempts: Sequence[Row[int, str | None]]) -> bool:
        """Cancel each attempt's intent that waits for 3-D Secure; True if one had succeeded."""
        paid = False
        for attempt_id, intent_id in attempts:
            view = self._gateway.cancel_intent(intent_id) if intent_id else None
            with self._sessions.begin() as session:
                attempt = session.get_one(PaymentAttempt, attempt_id, with_for_update=True)
                if view is not None and view.status == "succeeded":
                    apply_intent(session, attempt, "succeeded")
                    paid = True
                else:
                    end_attempt(session, attempt, AttemptStatus.CANCELED, "superseded",
                                "cancelled before a new attempt: the payer never authenticated it")
        return paid

    def _store_intent(self, attempt_id: int, intent_id: str) -> str:
        """Store the intent's id unless one is stored already; return the one that counts."""
        with self._sessions.begin() as session:
            session.execute(
                update(PaymentAttempt)
                .where(PaymentAttempt.id == attempt_id, PaymentAttempt.stripe_payment_intent_id.is_(None))
                .values(stripe_payment_intent_id=intent_id)
            )
            stored = session.get_one(PaymentAttempt, attempt_id, populate_existing=True).stripe_payment_intent_id
            assert stored is not None
            return stored

    def _settle(self, session: Session, attempt: PaymentAttempt, request: ChargeInvoice,
                view: IntentView) -> ChargeOutcome:
        outcome = apply_intent(session, attempt, view.status, view.failure_code, view.failure_message)
        if outcome == "paid":
            return ChargeOutcome(status=ChargeResult.PAID)
        if outcome == "pending":
            # processing and the like settle later (webhook); the activity is retried meanwhile
            raise RuntimeError(f"payment intent {view.id} is {view.status}: not settled yet")
        invoice = session.get_one(Invoice, attempt.invoice_id)
        queue_notice(
            session, dedupe_key=f"payment_failed:{invoice.id}:{request.attempt_no}", kind="payment_failed",
            recipient_kind=invoice.payer_kind, recipient_id=invoice.payer_id,
            subject=f"Payment of {format_eur(attempt.amount)} for invoice {invoice.display_number} failed: "
                    f"{attempt.failure_message}",
            business_date=request.business_date,
            payload={"client_id": invoice.client_id, "invoice": invoice.display_number or "", "amount": attempt.amount,
                     "failure": attempt.failure_message or "", "attempt_no": request.attempt_no},
        )
        return _outcome_of(attempt)

    def _refused(self, request: ChargeInvoice, key: str, exc: RequestRefused) -> ChargeOutcome:
        """R11: Stripe refused the request itself. The invoice stays open, the operator is
        alerted, and the workflow goes on (a new card, say, may cure it: it is retried then)."""
        with self._sessions.begin() as session:
            attempt = session.scalars(
                select(PaymentAttempt).where(PaymentAttempt.idempotency_key == key).with_for_update()
            ).one_or_none()
            if attempt is not None and attempt.status == AttemptStatus.PENDING:
                end_attempt(session, attempt, AttemptStatus.ERROR, exc.code, exc.message)
            invoice = session.get_one(Invoice, request.invoice_id)
            raise_alert(session, dedupe_key=f"charge:{key}", step="charge", invoice_id=invoice.id,
                        subscription_id=invoice.subscription_id,
                        error=f"Stripe refused the charge of invoice {invoice.display_number} ({exc.code}): "
                              f"{exc.message}")
        return ChargeOutcome(status=ChargeResult.ERROR, failure_code=exc.code, failure_message=exc.message)


def attempt_payer(session: Session, attempt: PaymentAttempt) -> tuple[str, str]:
    invoice = session.get_one(Invoice, attempt.invoice_id)
    return invoice.payer_kind, invoice.payer_id


def _outcome_of(attempt: PaymentAttempt) -> ChargeOutcome:
    if attempt.status == AttemptStatus.SUCCEEDED:
        return ChargeOutcome(status=ChargeResult.PAID)
    result = ChargeResult.ERROR if attempt.status == AttemptStatus.ERROR else ChargeResult.DECLINED
    return ChargeOutcome(status=result, failure_code=attempt.failure_code, failure_message=attempt.failure_message)


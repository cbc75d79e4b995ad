"""The only code that talks to Stripe (the official SDK; localstripe on the embedded default)."""
from dataclasses import dataclass

import stripe

from billing.money import CURRENCY


class CardRefused(ValueError):
    """Stripe refused the card itself (when it was registered)."""


class RequestRefused(Exception):
    """Stripe refused the request itself (unknown customer, detached card, amount too small…):
    no retry cures it, unlike an outage. R11: the operator is alerted, the workflow goes on."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code or "invalid_request"
        self.message = message


def _refused(exc: stripe.StripeError) -> RequestRefused:
    return RequestRefused(getattr(exc, "code", None), exc.user_message or str(exc) or "Stripe refused the request")


# Errors a retry cannot cure: a malformed or impossible request (4xx but 429), a key reused
# with other parameters. Outages (connection, 5xx, 429) and an authentication error (a key an
# operator can fix) stay retryable.
_UNRETRYABLE = (stripe.InvalidRequestError, stripe.IdempotencyError)


@dataclass(frozen=True)
class IntentView:
    id: str
    status: str  # requires_confirmation, succeeded, requires_payment_method, requires_action, …
    amount: int
    failure_code: str | None = None
    failure_message: str | None = None


REQUEST_TIMEOUT_SECONDS = 10  # a call slower than this is an outage; the activity is retried


class StripeGateway:
    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        base = {"api": api_base} if api_base else None
        # No SDK-level retries: Temporal retries the activity, with its own backoff and record.
        self._stripe = stripe.StripeClient(
            api_key, base_addresses=base, max_network_retries=0,  # type: ignore[arg-type]
            http_client=stripe.RequestsClient(timeout=REQUEST_TIMEOUT_SECONDS),
        )
        self._real_stripe = api_base is None

    def create_customer(self, *, name: str, payer_label: str) -> str:
        return self._stripe.v1.customers.create(params={"name": name, "metadata": {"payer": payer_label}}).id

    def customer_exists(self, customer_id: str) -> bool:
        try:
            customer = self._stripe.v1.customers.retrieve(customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return False
            raise
        return not customer.to_dict().get("deleted", False)

    def attach_card(self, customer_id: str, card: str) -> str:
        """Attach a card and make it the default; `card` is a PaymentMethod id or a test card number."""
        try:
            if card.startswith("pm_"):
                method_id = card
            else:
                method_id = self._stripe.v1.payment_methods.create(params={
                    "type": "card",
                    "card": {"number": card, "exp_month": 12, "exp_year": 2099, "cvc": "123"},
                }).id
            self._stripe.v1.payment_methods.attach(method_id, params={"customer": customer_id})
        except stripe.CardError as exc:
            raise CardRefused(exc.user_message or "the card was refused") from None
        except _UNRETRYABLE as exc:  # not a card Stripe knows (a malformed number or id)
            raise CardRefused(exc.user_message or "Stripe does not know this card") from None
        self._stripe.v1.customers.update(
            customer_id, params={"invoice_settings": {"default_payment_method": method_id}}
        )
        return method_id

    def create_intent(self, *, amount: int, customer_id: str, payment_method: str,
                      invoice_id: int, idempotency_key: str) -> str:
        """An unconfirmed PaymentIntent: nothing is charged until `confirm_intent`."""
        try:
            intent = self._stripe.v1.payment_intents.create(
                params={"amount": amount, "currency": CURRENCY, "customer": customer_id,
                        "payment_method": payment_method, "metadata": {"invoice_id": str(invoice_id)}},
                options={"idempotency_key": idempotency_key},
            )
        except _UNRETRYABLE as exc:
            raise _refused(exc) from None
        return intent.id

    def cancel_intent(self, intent_id: str) -> IntentView:
        """Cancel an intent that must never charge: one that lost a race to be stored, or an
        earlier attempt's that still waits for 3-D Secure. One that succeeded meanwhile is
        returned as it is (the caller records the payment)."""
        try:
            return _view(self._stripe.v1.payment_intents.cancel(intent_id))
        except _UNRETRYABLE:
            view = self.retrieve_intent(intent_id)
            if view.status in ("succeeded", "canceled"):
                return view
            raise

    def retrieve_intent(self, intent_id: str) -> IntentView:
        try:
            return _view(self._stripe.v1.payment_intents.retrieve(intent_id))
        except _UNRETRYABLE as exc:
            raise _refused(exc) from None

    def confirm_intent(self, intent_id: str) -> IntentView:
        """Confirm (charge); a decline comes back as a view, an outage as an exception."""
        # Real Stripe wants off_session for a charge the payer is not present for;
        # localstripe refuses the parameter.
        params = {"off_session": True} if self._real_stripe else {}
        try:
            return _view(self._stripe.v1.payment_intents.confirm(intent_id, params=params))  # type: ignore[arg-type]
        except _UNRETRYABLE as exc:
            raise _refused(exc) from None
        except stripe.CardError as exc:
            view = self.retrieve_intent(intent_id)
            return IntentView(view.id, view.status, view.amount, exc.code or "card_declined",
                              exc.user_message or "the card was declined")


    def list_intents(self) -> list[tuple[IntentView, str | None, int | None]]:
        """Every PaymentIntent in the account: (view, customer id, our invoice id from metadata)."""
        seen: dict[str, stripe.PaymentIntent] = {}
        params: dict[str, object] = {"limit": 100}
        while True:  # localstripe pages loosely: stop when a page brings nothing new
            page = self._stripe.v1.payment_intents.list(params=params)  # type: ignore[arg-type]
            fresh = [pi for pi in page.data if pi.id not in seen]
            seen.update((pi.id, pi) for pi in fresh)
            if not page.has_more or not fresh:
                break
            params["starting_after"] = page.data[-1].id
        listed = []
        for pi in seen.values():
            invoice = pi.to_dict().get("metadata", {}).get("invoice_id")
            customer = pi.customer if isinstance(pi.customer, str) or pi.customer is None else pi.customer.id
            listed.append((_view(pi), customer, int(invoice) if invoice and invoice.isdigit() else None))
        return listed


def _view(intent: stripe.PaymentIntent) -> IntentView:
    error = intent.to_dict().get("last_payment_error") or {}
    return IntentView(intent.id, intent.status, intent.amount, error.get("code"), error.get("message"))

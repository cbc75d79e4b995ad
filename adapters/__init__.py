"""Adapters to outside services (Stripe): the only code that speaks their APIs."""

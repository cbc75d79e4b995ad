"""Custom search attributes an operator filters on in the Temporal UI (typed, not dict-form)."""
from temporalio.common import SearchAttributeKey

FIRM_ID = SearchAttributeKey.for_keyword("FirmId")
CLIENT_ID = SearchAttributeKey.for_keyword("ClientId")
PLAN_CODE = SearchAttributeKey.for_keyword("PlanCode")
SUBSCRIPTION_STATUS = SearchAttributeKey.for_keyword("SubscriptionStatus")
BILLING_INTERVAL = SearchAttributeKey.for_keyword("BillingInterval")
PAYER_KIND = SearchAttributeKey.for_keyword("PayerKind")

ALL = (FIRM_ID, CLIENT_ID, PLAN_CODE, SUBSCRIPTION_STATUS, BILLING_INTERVAL, PAYER_KIND)

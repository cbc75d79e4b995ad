"""Demo data for a first run: two firms, clients in each of the seed's billing modes, so that
a newcomer sees live subscription workflows (and their search attributes) in the Temporal UI.
Idempotent: a second run adds nothing that is already there."""
from billing.rules import Refused
from contracts.subscription import Payer
from starter.service import SubscriptionService
from store.models import Client, Firm

TEST_CARD = "4242424242424242"  # localstripe; a real Stripe test account takes "pm_card_visa"

FIRMS = [("cab-dupont", "Cabinet Dupont"), ("cab-leroy", "Cabinet Leroy & Associés")]
# Legal identities for the invoices' Factur-X documents (issue 11): made-up SIRENs, valid in form.
IDENTITIES: dict[str, dict[str, str]] = {
    "cab-dupont": {"legal_name": "Cabinet Dupont SARL", "siren": "900000019", "vat_number": "FR25900000019",
                   "address_line1": "12 rue des Comptables", "postal_code": "69002", "city": "Lyon"},
    "cab-leroy": {"legal_name": "Leroy & Associés SAS", "siren": "900000027", "vat_number": "FR49900000027",
                  "address_line1": "3 quai de l'Audit", "postal_code": "33000", "city": "Bordeaux"},
    "pharmacie-roux": {"legal_name": "Pharmacie Roux SELARL", "siren": "900000035", "vat_number": "FR73900000035",
                       "address_line1": "8 place du Marché", "postal_code": "69003", "city": "Lyon"},
}
EMAIL_DOMAIN = "example.fr"  # reserved-looking demo addresses; mail goes to the local catcher anyway
CLIENTS = [
    ("boulangerie-martin", "Boulangerie Martin", "cab-dupont"),
    ("garage-petit", "Garage Petit", "cab-dupont"),
    ("pharmacie-roux", "Pharmacie Roux", "cab-dupont"),
    ("atelier-moreau", "Atelier Moreau", "cab-leroy"),
    ("cafe-bernard", "Café Bernard", "cab-leroy"),
]
# (client, plan, interval, payer): option 1 is the firm paying e-invoicing and the client its
# payments add-on; option 2 a bundle the client pays; option 3 e-invoicing the client pays.
SUBSCRIPTIONS = [
    ("boulangerie-martin", "essentiel", "monthly", "firm"),
    ("boulangerie-martin", "paiements", "monthly", "client"),
    ("garage-petit", "pack-essentiel", "annual", "client"),
    ("pharmacie-roux", "standard", "monthly", "client"),
    ("atelier-moreau", "essentiel", "annual", "firm"),
    ("cafe-bernard", "essentiel", "monthly", "firm"),
]


async def seed_demo(service: SubscriptionService, card: str = TEST_CARD) -> list[str]:
    """Create what is missing; return one line per subscription started."""
    with service.sessions.begin() as session:
        for firm_id, name in FIRMS:
            session.merge(Firm(id=firm_id, name=name, email=f"compta@{firm_id}.{EMAIL_DOMAIN}",
                               **IDENTITIES.get(firm_id, {})))
        session.flush()
        for client_id, name, firm_id in CLIENTS:
            session.merge(Client(id=client_id, name=name, firm_id=firm_id, email=f"contact@{client_id}.{EMAIL_DOMAIN}",
                                 **IDENTITIES.get(client_id, {})))
    for firm_id, _ in FIRMS:
        await service.register_card(payer=Payer(kind="firm", id=firm_id), card=card)
    for client_id, _, _ in CLIENTS:
        await service.register_card(payer=Payer(kind="client", id=client_id), card=card)
    started = []
    for client_id, plan, interval, payer in SUBSCRIPTIONS:
        try:
            state = await service.subscribe(client_id=client_id, plan_code=plan, interval=interval, payer_kind=payer)
        except Refused:
            continue  # already live from an earlier run
        started.append(f"{client_id}: {plan} {interval}, paid by {state.payer.label}")
    try:  # one pending cancellation and one upgrade, to have something to filter on
        await service.cancel(client_id="cafe-bernard")
        await service.change_plan(client_id="pharmacie-roux", plan_code="premium")
    except Refused:
        pass
    return started

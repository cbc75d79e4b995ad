"""The e-mails, in French: one text per kind of notice, written from the notice's facts.

Pure: no database, no SMTP. The facts are what the cause recorded with the notice (amounts in
cents, ISO dates); the names are looked up when the mail is sent. Dates read as in the help
article the firms know ("restera actif jusqu'au 01/10/2025"), amounts as French readers write
them (22,80 €).
"""
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from billing.money import format_eur_fr

Facts = Mapping[str, str | int]

SIGNATURE = "Le service facturation"
PER_INTERVAL = {"monthly": "par mois", "annual": "par an"}
BILLED = {"monthly": "mensuellement", "annual": "annuellement"}
BILLING = {"monthly": "mensuelle", "annual": "annuelle"}


@dataclass(frozen=True)
class Names:
    """Who the mail is to and who it is about, by name (ids when a name is unknown)."""

    recipient: str
    client: str
    recipient_is_client: bool  # "votre abonnement" rather than "l'abonnement de votre client X"


@dataclass(frozen=True)
class Letter:
    subject: str
    body: str


class UnknownKind(ValueError):
    """A notice kind with no text: a programming error, reported, never sent half-written."""


def french_date(iso: str | int) -> str:
    day = date.fromisoformat(str(iso))
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def euros(cents: str | int) -> str:
    return format_eur_fr(int(cents))


def write(kind: str, facts: Facts, names: Names) -> Letter:
    """The French e-mail for one notice. Raises UnknownKind for a kind with no text."""
    text = TEXTS.get(kind)
    if text is None:
        raise UnknownKind(f"no e-mail text for notice kind '{kind}'")
    whose = "votre abonnement" if names.recipient_is_client else f"l'abonnement de votre client {names.client}"
    subject, body = text(facts, whose, names.client)
    return Letter(subject=subject, body=f"Bonjour {names.recipient},\n\n{body}\n\n{SIGNATURE}\n")


def _plan(f: Facts) -> str:
    return f"{f['plan']} {BILLING.get(str(f['interval']), str(f['interval']))}"  # "Essentiel mensuelle"


def _started(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Abonnement {f['plan']} activé — {client}",
            f"{whose[0].upper()}{whose[1:]}, formule {_plan(f)}, est actif depuis le {french_date(f['period_start'])}.\n"
            f"Prix : {euros(f['price'])} HT {PER_INTERVAL.get(str(f['interval']), '')}. La facture de la première "
            f"période suit ; la prochaine échéance est le {french_date(f['period_end'])}.")


def _renewed(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Abonnement {f['plan']} renouvelé — {client}",
            f"{whose[0].upper()}{whose[1:]}, formule {_plan(f)}, est renouvelé le {french_date(f['period_start'])} ; "
            f"prochaine échéance le {french_date(f['period_end'])}.\nPrix : {euros(f['price'])} HT. La facture de la "
            "période, avec les éventuels suppléments de la période écoulée, suit.")


def _upgraded(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Passage à la formule {f['plan']} — {client}",
            f"{whose[0].upper()}{whose[1:]} passe dès aujourd'hui à la formule {_plan(f)}, avec son quota.\n"
            f"La différence de prix au prorata des jours restants jusqu'au {french_date(f['period_end'])}, "
            f"{euros(f['amount'])} HT, est facturée aujourd'hui.")


def _downgrade_scheduled(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Changement de formule programmé — {client}",
            f"{whose[0].upper()}{whose[1:]} passera de la formule {f['plan']} à la formule {f['new_plan']} le "
            f"{french_date(f['effective_on'])}, à son renouvellement. Rien n'est facturé ni remboursé d'ici là.")


def _interval_switch_scheduled(f: Facts, whose: str, client: str) -> tuple[str, str]:
    new = str(f["new_interval"])
    return (f"Facturation {BILLING.get(new, new)} à partir du {french_date(f['effective_on'])} — {client}",
            f"À partir du {french_date(f['effective_on'])}, date de son renouvellement, {whose} (formule "
            f"{f['plan']}) sera facturé {BILLED.get(new, new)}.")


def _cancel_scheduled(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Résiliation confirmée — {client}",
            f"La résiliation de {whose} (formule {_plan(f)}) est enregistrée. Il restera actif, avec son quota, "
            f"jusqu'au {french_date(f['period_end'])} ; il ne sera pas renouvelé.\n"
            "Vous pouvez annuler cette résiliation jusqu'à cette date.")


def _reactivated(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Résiliation annulée — {client}",
            f"{whose[0].upper()}{whose[1:]} (formule {_plan(f)}) continue : il sera renouvelé le "
            f"{french_date(f['period_end'])}.")


def _ended(f: Facts, whose: str, client: str) -> tuple[str, str]:
    on, reason = french_date(f["ended_on"]), str(f.get("reason", ""))
    if reason == "canceled_now":
        return (f"Abonnement annulé immédiatement — {client}",
                f"{whose[0].upper()}{whose[1:]} (formule {_plan(f)}) est annulé depuis le {on}. Conformément aux "
                "conditions, aucun remboursement n'est dû ; les suppléments consommés d'ici là font l'objet d'une "
                "facture finale.")
    if reason == "unpaid":
        return (f"Abonnement arrêté faute de paiement — {client}",
                f"{whose[0].upper()}{whose[1:]} (formule {_plan(f)}) est arrêté le {on} : les paiements ont échoué "
                "malgré nos relances.")
    return (f"Abonnement terminé — {client}",
            f"{whose[0].upper()}{whose[1:]} (formule {_plan(f)}) s'est terminé le {on}, à la fin de sa période.")


def _firm_stops_paying(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Le cabinet cesse de payer l'abonnement — {client}",
            f"Le cabinet cesse de prendre en charge {whose} (formule {_plan(f)}). Il reste actif jusqu'au "
            f"{french_date(f['period_end'])} ; pour qu'il continue au-delà, le client peut le reprendre à sa charge "
            "avant cette date.")


def _take_over_registered(f: Facts, whose: str, client: str) -> tuple[str, str]:
    payer = "le client" if f.get("new_payer_kind") == "client" else "le cabinet"
    plan = f"{f.get('next_plan', f['plan'])} {BILLING.get(str(f.get('next_interval', f['interval'])), '')}".strip()
    return (f"Reprise de l'abonnement le {french_date(f['effective_on'])} — {client}",
            f"{whose[0].upper()}{whose[1:]} (formule {plan}) sera payé par {payer} à partir du "
            f"{french_date(f['effective_on'])}, sans interruption ni double facturation.")


def _payment_failed(f: Facts, whose: str, client: str) -> tuple[str, str]:
    reason = f" : {f['failure']}" if f.get("failure") else ""
    return (f"Échec du paiement de la facture {f['invoice']} — mettez à jour votre carte",
            f"Le paiement de {euros(f['amount'])} pour la facture {f['invoice']} ({client}) a échoué{reason}.\n"
            "Nous réessaierons automatiquement dans les prochains jours. Pour éviter l'arrêt du service, "
            "enregistrez une nouvelle carte : le paiement sera retenté aussitôt.")


def _invoice_issued(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Facture {f['invoice']} — {client}",
            f"La facture {f['invoice']} du {french_date(f['issued_on'])} pour {client} est émise.\n"
            f"Total HT : {euros(f['subtotal'])}\nTVA (20 %) : {euros(f['tax'])}\nTotal TTC : {euros(f['total'])}\n"
            + ("Elle sera prélevée sur le moyen de paiement enregistré." if int(f["total"]) > 0
               else "Elle est soldée : rien n'est à payer."))


def _invoice_uncollectible(f: Facts, whose: str, client: str) -> tuple[str, str]:
    return (f"Facture {f['invoice']} impayée — {client}",
            f"Malgré nos relances, la facture {f['invoice']} ({euros(f['total'])} TTC) pour {client} n'a pas pu "
            "être prélevée. Elle est classée impayée ; contactez-nous pour la régler.")


def _quota(f: Facts, whose: str, client: str) -> tuple[str, str]:
    pct = int(f["percent"])
    more = ("Les documents au-delà du quota sont facturés en supplément à la fin de la période."
            if pct >= 100 else "Au-delà du quota, les documents sont facturés en supplément.")
    return (f"{client} a utilisé {pct} % de son quota de documents",
            f"{client} a traité {f['used']} documents sur les {f['quota']} inclus dans la période en cours "
            f"({pct} %). {more}")


TEXTS: dict[str, Callable[[Facts, str, str], tuple[str, str]]] = {
    "started": _started,
    "renewed": _renewed,
    "upgraded": _upgraded,
    "downgrade_scheduled": _downgrade_scheduled,
    "interval_switch_scheduled": _interval_switch_scheduled,
    "cancel_scheduled": _cancel_scheduled,
    "reactivated": _reactivated,
    "ended": _ended,
    "firm_stops_paying": _firm_stops_paying,
    "take_over_registered": _take_over_registered,
    "payment_failed": _payment_failed,
    "invoice_issued": _invoice_issued,
    "invoice_uncollectible": _invoice_uncollectible,
    "quota_80": _quota,
    "quota_100": _quota,
}

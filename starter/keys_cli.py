"""`python -m starter firms …`, `clients …` and `operator-key`: firms and clients with their legal
identity (issue 11), and API keys (R15). Each prints one JSON line; a key is shown once (only its hash is stored).
Errors: one sentence, exit 2, and nothing written."""
import argparse
import json
import re
import sys
import unicodedata
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from settings import Settings

if TYPE_CHECKING:
    from store.models import Client, Firm

MAX_NAME = 200
EMAIL = r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}"
# LegalIdentity's fields (starter/api_schemas.py), validated as the API does: option -> help.
IDENTITY_OPTIONS = {
    "legal_name": "the legal name e-invoices give (default: --name)",
    "siren": "the SIREN, 9 digits (spaces allowed)",
    "vat_number": "the French VAT number, FR + key + SIREN",
    "address_line1": "the postal address, first line",
    "address_line2": "the postal address, second line",
    "postal_code": "the postal code",
    "city": "the city",
    "country": "ISO 3166-1 country code (default FR)",
    "billing_email": "where invoices are e-mailed, when not --email",
}


def add_identity_options(parser: argparse.ArgumentParser) -> None:
    for field, help_text in IDENTITY_OPTIONS.items():
        parser.add_argument(_option(field), dest=field, help=help_text)


def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    from embedded.stack import database_url_for_cli
    from store.db import make_engine, make_session_factory

    engine = make_engine(database_url_for_cli(settings))
    try:
        sessions = make_session_factory(engine)
        if args.command == "operator-key":
            return _print({"api_key": _new_key(sessions, None)})
        if args.command == "clients":
            return _create_client(sessions, args) if args.action == "create" else _update_client(sessions, args)
        if args.action == "create":
            return _create_firm(sessions, args.name, args.id, args.email, _identity_given(args))
        if args.action == "update":
            return _update_firm(sessions, args)
        if args.action == "new-key":
            if not _firm_exists(sessions, args.firm_id):
                return _fail(f"there is no firm '{args.firm_id}'")
            return _print({"firm_id": args.firm_id, "api_key": _new_key(sessions, args.firm_id)})
        return _revoke(sessions, args.firm_id, args.prefix)
    finally:
        engine.dispose()


def _create_firm(sessions: "sessionmaker[Session]", name: str, firm_id: str | None, email: str | None = None,
                 identity_given: dict[str, str | None] | None = None) -> int:
    from store.models import Firm

    name = name.strip()
    if not 0 < len(name) <= MAX_NAME:
        return _fail(f"--name must have 1 to {MAX_NAME} characters")
    if email is not None and not re.fullmatch(EMAIL, email):
        return _fail("--email must be an address like compta@cabinet.fr")
    firm_id = firm_id or _slug(name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", firm_id):
        return _fail("--id must be 1 to 64 lowercase letters, digits, '-' or '_'")
    identity = _valid_identity(identity_given or {}, sent_only=False)
    if isinstance(identity, str):
        return _fail(identity)
    try:
        with sessions.begin() as session:
            from starter.portal import change_identity

            firm = Firm(id=firm_id, name=name, email=email)
            change_identity(firm, {k: v for k, v in identity.items() if v is not None})  # a VAT number gives the SIREN
            session.add(firm)
            session.flush()
            from store.api_keys import new_key

            key = new_key(session, firm_id=firm_id, label="created with the firm")
    except IntegrityError:
        return _fail(f"a firm '{firm_id}' already exists: give another --id")
    return _print({"id": firm_id, "api_key": key})


def _update_firm(sessions: "sessionmaker[Session]", args: argparse.Namespace) -> int:
    """`firms update FIRM_ID`: only the options given change; an empty value clears one."""
    from store.models import Firm

    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name.strip()
        if not 0 < len(changes["name"]) <= MAX_NAME:
            return _fail(f"--name must have 1 to {MAX_NAME} characters")
    if args.email is not None:
        if args.email and not re.fullmatch(EMAIL, args.email):
            return _fail("--email must be an address like compta@cabinet.fr (or empty, to clear it)")
        changes["email"] = args.email or None
    return _update_party(sessions, args, Firm, args.firm_id, changes)


def _create_client(sessions: "sessionmaker[Session]", args: argparse.Namespace) -> int:
    """`clients create --firm F --name N`: what POST /v1/clients does, for the operator (no card:
    the firm registers it through the API, or the client does)."""
    import secrets

    from store.models import Client, Firm
    from store.read_models import client_view

    name = args.name.strip()
    if not 0 < len(name) <= MAX_NAME:
        return _fail(f"--name must have 1 to {MAX_NAME} characters")
    if args.email is not None and not re.fullmatch(EMAIL, args.email):
        return _fail("--email must be an address like contact@client.fr")
    if args.external_id is not None and not 0 < len(args.external_id.strip()) <= 64:
        return _fail("--external-id must have 1 to 64 characters")
    identity = _valid_identity(_identity_given(args), sent_only=False)
    if isinstance(identity, str):
        return _fail(identity)
    from starter.portal import change_identity

    try:
        with sessions.begin() as session:
            if session.get(Firm, args.firm) is None:
                return _fail(f"there is no firm '{args.firm}'")
            client = Client(id=f"cli_{secrets.token_hex(8)}", name=name, email=args.email, firm_id=args.firm,
                            external_id=args.external_id.strip() if args.external_id else None)
            change_identity(client, {k: v for k, v in identity.items() if v is not None})
            session.add(client)
            session.flush()
            view = client_view(client)
    except IntegrityError:
        return _fail(f"--external-id: the firm already has a client '{args.external_id}'")
    return _print(view.model_dump(mode="json"))


def _update_client(sessions: "sessionmaker[Session]", args: argparse.Namespace) -> int:
    """`clients update CLIENT_ID`: its legal identity, as PATCH /v1/clients/{id} changes it."""
    from store.models import Client

    return _update_party(sessions, args, Client, args.client_id, {})


def _update_party(sessions: "sessionmaker[Session]", args: argparse.Namespace, kind: "type[Firm | Client]",
                  party_id: str, changes: dict[str, Any]) -> int:
    """The identity options given (checked as the API checks them) and `changes`, in one transaction:
    a refusal rolls back and nothing is written. Prints the party."""
    from billing.rules import Refused
    from starter.portal import change_identity
    from store.models import Firm
    from store.read_models import client_view, firm_view

    identity = _valid_identity(_identity_given(args), sent_only=True)
    if isinstance(identity, str):
        return _fail(identity)
    try:
        with sessions.begin() as session:
            party = cast("Firm | Client | None", session.get(kind, party_id, with_for_update=True))
            if party is None:
                raise Refused(f"there is no {kind.__name__.lower()} '{party_id}'")
            change_identity(party, identity)
            for name, value in changes.items():
                setattr(party, name, value)
            session.flush()
            view = firm_view(party) if isinstance(party, Firm) else client_view(party)
    except Refused as exc:
        return _fail(_as_option(str(exc)))
    return _print(view.model_dump(mode="json"))


def _identity_given(args: argparse.Namespace) -> dict[str, str | None]:
    """The identity options given; an empty one is None (cleared), but the country's."""
    given = {field: getattr(args, field) for field in IDENTITY_OPTIONS if getattr(args, field) is not None}
    return {field: value if value or field == "country" else None for field, value in given.items()}


def _valid_identity(given: dict[str, str | None], *, sent_only: bool) -> dict[str, Any] | str:
    """The identity as LegalIdentity validates it (the API's rules), or the sentence to print."""
    from starter.api_schemas import LegalIdentity

    try:
        return LegalIdentity.model_validate(given).identity(sent_only=sent_only)
    except ValidationError as exc:
        return "; ".join(_as_option(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}")
                         for error in exc.errors()).replace("Value error, ", "")


def _as_option(sentence: str) -> str:
    """`siren: SIREN … fails …` -> `--siren: SIREN … fails …`: the field named as its option."""
    field, colon, rest = sentence.partition(": ")
    return f"{_option(field)}: {rest}" if colon and field in IDENTITY_OPTIONS else sentence


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _new_key(sessions: "sessionmaker[Session]", firm_id: str | None) -> str:
    from store.api_keys import new_key

    with sessions.begin() as session:
        return new_key(session, firm_id=firm_id, label="operator" if firm_id is None else "")


def _revoke(sessions: "sessionmaker[Session]", firm_id: str, prefix: str | None) -> int:
    from store.api_keys import revoke_keys

    if not _firm_exists(sessions, firm_id):
        return _fail(f"there is no firm '{firm_id}'")
    with sessions.begin() as session:
        count = revoke_keys(session, firm_id=firm_id, prefix=prefix)
    return _print({"firm_id": firm_id, "revoked": count})


def _firm_exists(sessions: "sessionmaker[Session]", firm_id: str) -> bool:
    from store.models import Firm

    with sessions() as session:
        return session.get(Firm, firm_id) is not None


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:64] or "firm"


def _print(payload: dict[str, object]) -> int:
    print(json.dumps(payload))
    return 0


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2

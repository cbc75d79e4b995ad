"""`python -m starter firms …` and `operator-key`: firms and API keys (R15). Each prints one
JSON line; a key is shown once (only its hash is stored). Errors: one sentence, exit 2."""
import argparse
import json
import re
import sys
import unicodedata

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from settings import Settings

MAX_NAME = 200


def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    from embedded.stack import database_url_for_cli
    from store.db import make_engine, make_session_factory

    engine = make_engine(database_url_for_cli(settings))
    try:
        sessions = make_session_factory(engine)
        if args.command == "operator-key":
            return _print({"api_key": _new_key(sessions, None)})
        if args.action == "create":
            return _create_firm(sessions, args.name, args.id, args.email)
        if args.action == "new-key":
            if not _firm_exists(sessions, args.firm_id):
                return _fail(f"there is no firm '{args.firm_id}'")
            return _print({"firm_id": args.firm_id, "api_key": _new_key(sessions, args.firm_id)})
        return _revoke(sessions, args.firm_id, args.prefix)
    finally:
        engine.dispose()


def _create_firm(sessions: "sessionmaker[Session]", name: str, firm_id: str | None, email: str | None = None) -> int:
    from store.models import Firm

    name = name.strip()
    if not 0 < len(name) <= MAX_NAME:
        return _fail(f"--name must have 1 to {MAX_NAME} characters")
    if email is not None and not re.fullmatch(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}", email):
        return _fail("--email must be an address like compta@cabinet.fr")
    firm_id = firm_id or _slug(name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", firm_id):
        return _fail("--id must be 1 to 64 lowercase letters, digits, '-' or '_'")
    try:
        with sessions.begin() as session:
            session.add(Firm(id=firm_id, name=name, email=email))
            session.flush()
            from store.api_keys import new_key

            key = new_key(session, firm_id=firm_id, label="created with the firm")
    except IntegrityError:
        return _fail(f"a firm '{firm_id}' already exists: give another --id")
    return _print({"id": firm_id, "api_key": key})


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

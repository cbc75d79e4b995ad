"""API keys (R15): a firm's key acts for that firm, an operator key for the platform.

A key is shown once, when it is made; only its SHA-256 is stored (with a short prefix people
can tell keys apart by). Revoked keys stop working at once.
"""
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import func

from store.models import ApiKey

KEY_PREFIX = "cbk_"


@dataclass(frozen=True)
class KeyOwner:
    firm_id: str | None  # None: the platform operator


def new_key(session: Session, *, firm_id: str | None, label: str = "") -> str:
    """Make a key for the firm (or the operator); returns the plain key, never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(key_hash=_hash(plain), prefix=plain[:12], firm_id=firm_id, label=label[:200]))
    session.flush()
    return plain


def owner_of(session: Session, plain: str) -> KeyOwner | None:
    """Who a presented key acts for, or None (unknown or revoked)."""
    row = session.execute(
        select(ApiKey.firm_id).where(ApiKey.key_hash == _hash(plain), ApiKey.revoked_at.is_(None))
    ).first()
    return None if row is None else KeyOwner(firm_id=row.firm_id)


def revoke_keys(session: Session, *, firm_id: str | None, prefix: str | None = None) -> int:
    """Revoke the firm's keys (all, or the one whose prefix is given); returns how many."""
    condition = ApiKey.firm_id.is_(None) if firm_id is None else ApiKey.firm_id == firm_id
    statement = update(ApiKey).where(condition, ApiKey.revoked_at.is_(None))
    if prefix is not None:
        statement = statement.where(ApiKey.prefix == prefix)
    return session.execute(statement.values(revoked_at=func.now())).rowcount  # type: ignore[attr-defined]


def _hash(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()

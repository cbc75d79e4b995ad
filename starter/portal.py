"""What the firm's screens read and the client records they create (R14, R15), for one actor.

Access is decided here, not in the routes: every method takes the `Actor` and a firm's call
on another firm's client, subscription or invoice raises `NotFound`, exactly like an id that
does not exist. Reads come from PostgreSQL (the read model), never from workflow queries.
"""
import asyncio
import secrets
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billing.catalog import Catalog
from billing.rules import Refused
from contracts.subscription import Payer
from contracts.views import ClientTab, ClientView, FirmOverview, FirmView, InvoiceView, Page
from starter.access import Actor, NotFound
from starter.service import SubscriptionService
from store import read_models
from store.models import Client, Firm, PaymentCustomer
from store.usage_bulk import UsageEventIn, UsageEventResult, record_usage_batch

T = TypeVar("T")


class Portal:
    def __init__(self, sessions: sessionmaker[Session], catalog: Catalog, service: SubscriptionService) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.service = service

    # --- clients ------------------------------------------------------------------------

    async def create_client(self, actor: Actor, *, name: str, external_id: str | None, email: str | None,
                            card: str | None, firm_id: str | None, identity: dict[str, Any] | None = None) -> ClientView:
        owner = self._owner_for_new_client(actor, firm_id)
        view = await asyncio.to_thread(self._insert_client, owner, name, external_id, email, identity or {})
        if card is not None:
            try:
                await self.service.register_card(payer=Payer(kind="client", id=view.id), card=card)
            except Refused:
                await asyncio.to_thread(self._forget_client, view.id)  # a refusal writes nothing
                raise
        return view

    async def list_clients(self, actor: Actor, *, cursor: str | None, limit: int) -> Page[ClientView]:
        return await self._read(lambda s: read_models.list_clients(s, firm_id=actor.firm_id, cursor=cursor, limit=limit))

    async def client(self, actor: Actor, client_id: str) -> ClientView:
        return read_models.client_view(await self._visible(actor, client_id))

    async def update_client(self, actor: Actor, client_id: str, changes: dict[str, Any]) -> ClientView:
        """Completes or changes the client's legal identity (issue 11): only the fields in `changes`."""
        def write() -> ClientView:
            with self.sessions.begin() as session:  # a refusal rolls back: nothing changes
                client = session.get(Client, client_id, with_for_update=True)
                if client is None or not actor.may_see(client.firm_id):
                    raise NotFound(f"there is no client '{client_id}'")
                change_identity(client, changes)
                session.flush()
                return read_models.client_view(client)
        return await asyncio.to_thread(write)

    async def client_tab(self, actor: Actor, client_id: str) -> ClientTab:
        tab = await self._read(lambda s: read_models.client_tab(s, self.catalog, client_id=client_id))
        if tab is None or not actor.may_see(tab.client.firm_id):
            raise NotFound(f"there is no client '{client_id}'")
        return tab

    # --- billing history ------------------------------------------------------------------

    async def client_invoices(self, actor: Actor, client_id: str, *, cursor: str | None, limit: int) -> Page[InvoiceView]:
        await self._visible(actor, client_id)  # R15 first
        return await self._read(
            lambda s: read_models.client_invoices(s, client_id=client_id, cursor=cursor, limit=limit))

    async def invoice(self, actor: Actor, number: str) -> InvoiceView:
        def read(session: Session) -> InvoiceView | None:
            found = read_models.invoice_by_number(session, number=number)
            if found is None:
                return None
            firm_id = session.scalar(select(Client.firm_id).where(Client.id == found.client_id))
            return found if firm_id is not None and actor.may_see(firm_id) else None
        found = await self._read(read)
        if found is None:
            raise NotFound(f"there is no invoice '{number}'")
        return found

    async def firm_overview(self, actor: Actor, *, firm_id: str | None, cursor: str | None, limit: int) -> FirmOverview:
        target = self._target_firm(actor, firm_id)
        if await self._read(lambda s: s.get(Firm, target)) is None:
            raise NotFound(f"there is no firm '{target}'")
        return await self._read(
            lambda s: read_models.firm_overview(s, self.catalog, firm_id=target, cursor=cursor, limit=limit))

    # --- the firm itself ------------------------------------------------------------------------

    async def firm(self, actor: Actor, *, firm_id: str | None) -> FirmView:
        target = self._target_firm(actor, firm_id)

        def read(session: Session) -> FirmView | None:
            firm = session.get(Firm, target)
            return None if firm is None else read_models.firm_view(firm)
        found = await self._read(read)
        if found is None:
            raise NotFound(f"there is no firm '{target}'")
        return found

    async def update_firm(self, actor: Actor, *, firm_id: str | None, changes: dict[str, Any]) -> FirmView:
        """Completes or changes the firm's legal identity (issue 11): only the fields in `changes`."""
        target = self._target_firm(actor, firm_id)

        def write() -> FirmView:
            with self.sessions.begin() as session:  # a refusal rolls back: nothing changes
                firm = session.get(Firm, target, with_for_update=True)
                if firm is None:
                    raise NotFound(f"there is no firm '{target}'")
                change_identity(firm, changes)
                session.flush()
                return read_models.firm_view(firm)
        return await asyncio.to_thread(write)

    # --- cards and usage ---------------------------------------------------------------------

    async def register_client_card(self, actor: Actor, client_id: str, card: str) -> Payer:
        await self._visible(actor, client_id)
        payer = Payer(kind="client", id=client_id)
        await self.service.register_card(payer=payer, card=card)
        return payer

    async def register_firm_card(self, actor: Actor, card: str) -> Payer:
        if actor.firm_id is None:
            raise Refused("the operator has no card: a firm registers its own with its key")
        payer = Payer(kind="firm", id=actor.firm_id)
        await self.service.register_card(payer=payer, card=card)
        return payer

    async def report_usage(self, actor: Actor, events: Sequence[UsageEventIn]) -> list[UsageEventResult]:
        """R12 in bulk: one answer per event; another firm's client is refused like an unknown one."""
        def write() -> list[UsageEventResult]:
            with self.sessions.begin() as session:
                return record_usage_batch(session, events, firm_id=actor.firm_id)
        return await asyncio.to_thread(write)

    # --- helpers ------------------------------------------------------------------------------

    async def _visible(self, actor: Actor, client_id: str) -> Client:
        return await asyncio.to_thread(self.service.visible_client, client_id, actor)

    async def _read(self, read: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.sessions() as session:
                try:
                    return read(session)
                except ValueError as exc:
                    if str(exc) == read_models.MALFORMED_CURSOR:
                        raise Refused(f"cursor: {exc}") from None
                    raise
        return await asyncio.to_thread(run)

    @staticmethod
    def _target_firm(actor: Actor, firm_id: str | None) -> str:
        """The firm a firm-wide call is about: the caller's own, or the one the operator names."""
        if actor.firm_id is not None and firm_id not in (None, actor.firm_id):
            raise NotFound(f"there is no firm '{firm_id}'")
        target = actor.firm_id or firm_id
        if target is None:
            raise Refused("the operator must name the firm (firm_id)")
        return target

    @staticmethod
    def _owner_for_new_client(actor: Actor, firm_id: str | None) -> str:
        if actor.firm_id is None:
            if firm_id is None:
                raise Refused("firm_id: the operator must say which firm manages the client")
            return firm_id
        if firm_id is not None and firm_id != actor.firm_id:
            raise NotFound(f"there is no firm '{firm_id}'")
        return actor.firm_id

    def _forget_client(self, client_id: str) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(PaymentCustomer).where(PaymentCustomer.payer_kind == "client",
                                                          PaymentCustomer.payer_id == client_id))
            session.execute(delete(Client).where(Client.id == client_id))

    def _insert_client(self, firm_id: str, name: str, external_id: str | None, email: str | None,
                       identity: dict[str, Any]) -> ClientView:
        with self.sessions.begin() as session:
            if session.get(Firm, firm_id) is None:
                raise NotFound(f"there is no firm '{firm_id}'")
            client = Client(id=f"cli_{secrets.token_hex(8)}", name=name, email=email, firm_id=firm_id,
                            external_id=external_id)
            change_identity(client, {k: v for k, v in identity.items() if v is not None})  # nothing to clear yet
            session.add(client)
            try:
                session.flush()
            except IntegrityError:
                raise Refused(f"external_id: the firm already has a client '{external_id}'") from None
            return read_models.client_view(client)


def change_identity(party: Firm | Client, changes: dict[str, Any]) -> None:
    """Sets the identity fields sent (`LegalIdentity.identity(sent_only=True)`: each already
    valid), once the SIREN and the VAT number they leave agree, sent or on record (issue 11).
    Refused with a sentence that starts with the field at fault ("vat_number: …")."""
    siren = changes.get("siren", party.siren)
    vat_number = changes.get("vat_number", party.vat_number)
    if vat_number is not None and siren is None:
        if "siren" in changes:  # cleared: a VAT number of a SIREN the party no longer has would stay
            raise Refused(f"siren: cannot be cleared while the VAT number {vat_number} holds it "
                          "(clear vat_number with it)")
        changes = {**changes, "siren": vat_number[4:]}  # a French VAT number holds the SIREN
    elif siren is not None and vat_number is not None and vat_number[4:] != siren:
        kind = "firm" if isinstance(party, Firm) else "client"
        if "vat_number" in changes:  # with a SIREN sent too, LegalIdentity has refused it already
            raise Refused(f"vat_number: VAT number {vat_number} holds SIREN {vat_number[4:]}, not the {kind}'s "
                          f"SIREN {siren} on record (send the new SIREN with it to change both)")
        raise Refused(f"siren: SIREN {siren} is not the one in the {kind}'s VAT number {vat_number} on record "
                      f"(send the matching VAT number with it, or clear that one)")
    for name, value in changes.items():
        setattr(party, name, value)



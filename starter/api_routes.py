"""The /v1 routes: the firm portal's back end drives the product through these (issue 8).

Routes only translate HTTP to the service layer (`Portal`, `SubscriptionService`), which
decides access (R15) and rules; every failure becomes problem+json (starter/api_errors.py).
"""
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query
from sqlalchemy.orm import Session, sessionmaker

from billing.intervals import Line
from contracts.subscription import ChangeResult, Ended, Scheduled
from contracts.views import ClientTab, ClientView, FirmOverview, FirmView, InvoiceView, Page
from starter.access import Actor
from starter.api_documents import document_router
from starter.api_errors import Unauthorized
from starter.api_metrics import ApiMetrics
from starter.api_schemas import (
    CardAnswer,
    CardBody,
    ChangePlanBody,
    ClientCreate,
    LegalIdentity,
    PlanView,
    Subscribe,
    SubscriptionAnswer,
    SwitchIntervalBody,
    TakeOverBody,
    UsageAnswer,
    UsageBatch,
    UsageBatchAnswer,
)
from starter.portal import Portal
from store.api_keys import owner_of
from store.usage_bulk import UsageEventIn

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
ClientId = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)]
Cursor = Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="from `next_cursor` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=1000)]
FirmId = Annotated[str | None, Query(max_length=64, pattern=NO_NUL, description="operator only")]
PROBLEMS = {code: {"description": text, "content": {"application/problem+json": {}}}
            for code, text in [(401, "no key, or a key we do not know"), (404, "not found for this caller"),
                               (422, "invalid or refused, with a sentence"), (503, "no answer in time")]}


def v1_router(portal: Portal, sessions: sessionmaker[Session], metrics: ApiMetrics | None = None) -> APIRouter:
    service = portal.service

    def actor(authorization: Annotated[str | None, Header()] = None) -> Actor:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized("send your API key as `Authorization: Bearer <key>`")
        with sessions() as session:
            owner = owner_of(session, key.strip())
        if owner is None:
            raise Unauthorized("this API key is not valid (unknown or revoked)")
        return Actor(firm_id=owner.firm_id)

    Caller = Annotated[Actor, Depends(actor)]
    api = APIRouter(prefix="/v1", responses=PROBLEMS)  # type: ignore[arg-type]

    @api.get("/plans", response_model=list[PlanView], tags=["catalogue"])
    async def plans(_: Caller) -> list[PlanView]:
        return [PlanView(code=p.code, product=p.product, name=p.name, features=list(p.features), prices=p.prices,
                         quota=p.quota, overage=p.overage) for p in portal.catalog]

    @api.post("/clients", status_code=201, response_model=ClientView, tags=["clients"])
    async def create_client(body: ClientCreate, who: Caller) -> ClientView:
        return await portal.create_client(who, name=body.name, external_id=body.external_id, email=body.email,
                                          card=body.card, firm_id=body.firm_id, identity=body.identity())

    @api.get("/clients", response_model=Page[ClientView], tags=["clients"])
    async def list_clients(who: Caller, cursor: Cursor = None, limit: Limit = 100) -> Page[ClientView]:
        return await portal.list_clients(who, cursor=cursor, limit=limit)

    @api.get("/clients/{client_id}", response_model=ClientView, tags=["clients"])
    async def get_client(client_id: ClientId, who: Caller) -> ClientView:
        return await portal.client(who, client_id)

    @api.patch("/clients/{client_id}", response_model=ClientView, tags=["clients"])
    async def update_client(client_id: ClientId, body: LegalIdentity, who: Caller) -> ClientView:
        """Completes or changes the client's legal identity: only the fields sent change."""
        return await portal.update_client(who, client_id, body.identity(sent_only=True))

    @api.get("/clients/{client_id}/subscriptions", response_model=ClientTab, tags=["subscriptions"])
    async def client_tab(client_id: ClientId, who: Caller) -> ClientTab:
        return await portal.client_tab(who, client_id)

    @api.post("/clients/{client_id}/subscriptions", status_code=201, response_model=SubscriptionAnswer,
              tags=["subscriptions"])
    async def subscribe(client_id: ClientId, body: Subscribe, who: Caller) -> SubscriptionAnswer:
        s = await service.subscribe(client_id=client_id, plan_code=body.plan, interval=body.interval.value,
                                    payer_kind=body.payer, actor=who)
        return SubscriptionAnswer(subscription_id=s.subscription_id, line=s.line, plan=s.plan.code,
                                  interval=s.interval, payer=s.payer, status=s.status, period_start=s.period_start,
                                  period_end=s.period_end)

    @api.post("/clients/{client_id}/subscriptions/{line}/change-plan", response_model=ChangeResult,
              tags=["changes"])
    async def change_plan(client_id: ClientId, line: Line, body: ChangePlanBody, who: Caller) -> ChangeResult:
        return await service.change_plan(client_id=client_id, plan_code=body.plan, line=line.value, actor=who)

    @api.post("/clients/{client_id}/subscriptions/{line}/change-plan/preview", response_model=ChangeResult,
              tags=["changes"])
    async def preview(client_id: ClientId, line: Line, body: ChangePlanBody, who: Caller) -> ChangeResult:
        return await service.preview_change_plan(client_id=client_id, plan_code=body.plan, line=line.value, actor=who)

    @api.post("/clients/{client_id}/subscriptions/{line}/switch-interval", response_model=Scheduled,
              tags=["changes"])
    async def switch_interval(client_id: ClientId, line: Line, body: SwitchIntervalBody,
                              who: Caller) -> Scheduled:
        return await service.switch_interval(client_id=client_id, interval=body.interval.value, line=line.value,
                                             actor=who)

    @api.post("/clients/{client_id}/subscriptions/{line}/cancel", response_model=Scheduled, tags=["changes"])
    async def cancel(client_id: ClientId, line: Line, who: Caller) -> Scheduled:
        return await service.cancel(client_id=client_id, line=line.value, actor=who)

    @api.post("/clients/{client_id}/subscriptions/{line}/reactivate", response_model=Scheduled,
              tags=["changes"])
    async def reactivate(client_id: ClientId, line: Line, who: Caller) -> Scheduled:
        return await service.reactivate(client_id=client_id, line=line.value, actor=who)

    @api.post("/clients/{client_id}/subscriptions/{line}/cancel-now", response_model=Ended, tags=["changes"])
    async def cancel_now(client_id: ClientId, line: Line, who: Caller) -> Ended:
        return await service.cancel_now(client_id=client_id, line=line.value, actor=who)

    @api.post("/clients/{client_id}/subscriptions/{line}/stop-paying", response_model=Scheduled,
              tags=["changes"])
    async def stop_paying(client_id: ClientId, line: Line, who: Caller) -> Scheduled:
        return await service.stop_paying(client_id=client_id, line=line.value, actor=who)

    @api.post("/clients/{client_id}/subscriptions/{line}/take-over", response_model=Scheduled,
              tags=["changes"])
    async def take_over(client_id: ClientId, line: Line, body: TakeOverBody, who: Caller) -> Scheduled:
        return await service.take_over(client_id=client_id, payer_kind=body.payer, line=line.value, actor=who)

    @api.put("/clients/{client_id}/card", response_model=CardAnswer, tags=["cards"])
    async def client_card(client_id: ClientId, body: CardBody, who: Caller) -> CardAnswer:
        return CardAnswer(payer=await portal.register_client_card(who, client_id, body.card))

    @api.put("/firm/card", response_model=CardAnswer, tags=["cards"])
    async def firm_card(body: CardBody, who: Caller) -> CardAnswer:
        return CardAnswer(payer=await portal.register_firm_card(who, body.card))

    @api.get("/clients/{client_id}/invoices", response_model=Page[InvoiceView], tags=["invoices"])
    async def client_invoices(client_id: ClientId, who: Caller, cursor: Cursor = None,
                              limit: Limit = 100) -> Page[InvoiceView]:
        return await portal.client_invoices(who, client_id, cursor=cursor, limit=limit)

    @api.get("/invoices/{number}", response_model=InvoiceView, tags=["invoices"])
    async def invoice(number: Annotated[str, Path(min_length=1, max_length=32, pattern=NO_NUL)],
                      who: Caller) -> InvoiceView:
        return await portal.invoice(who, number)

    api.include_router(document_router(portal, sessions, actor))  # issue 11: the invoices' e-invoices

    @api.get("/firm/overview", response_model=FirmOverview, tags=["firm"])
    async def overview(who: Caller, cursor: Cursor = None, limit: Limit = 100, firm_id: FirmId = None) -> FirmOverview:
        return await portal.firm_overview(who, firm_id=firm_id, cursor=cursor, limit=limit)

    @api.get("/firm", response_model=FirmView, tags=["firm"])
    async def get_firm(who: Caller, firm_id: FirmId = None) -> FirmView:
        """The calling firm: its name and legal identity (the operator names the firm)."""
        return await portal.firm(who, firm_id=firm_id)

    @api.patch("/firm", response_model=FirmView, tags=["firm"])
    async def update_firm(body: LegalIdentity, who: Caller, firm_id: FirmId = None) -> FirmView:
        """Completes or changes the firm's legal identity: only the fields sent change."""
        return await portal.update_firm(who, firm_id=firm_id, changes=body.identity(sent_only=True))

    @api.post("/usage-events", response_model=UsageBatchAnswer, tags=["usage"])
    async def usage_events(body: UsageBatch, who: Caller) -> UsageBatchAnswer:
        events = [UsageEventIn(e.event_id, e.client_id, e.occurred_at, e.documents) for e in body.events]
        results = await portal.report_usage(who, events)
        answers = [UsageAnswer(event_id=r.event_id, status=r.status, reason=r.reason) for r in results]
        answer = UsageBatchAnswer(accepted=sum(a.status == "accepted" for a in answers),
                                  duplicates=sum(a.status == "duplicate" for a in answers),
                                  refused=sum(a.status == "refused" for a in answers), results=answers)
        if metrics is not None:
            for result, n in (("accepted", answer.accepted), ("duplicate", answer.duplicates),
                              ("refused", answer.refused)):
                metrics.usage_events.labels(result).inc(n)
        return answer

    return api



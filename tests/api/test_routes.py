"""The firm portal's back end through the HTTP API: a worked session, previews that match the
charge, usage in bulk, problem+json errors and Idempotency-Key replays (issue 8)."""
import asyncio
from datetime import date

from starter.simulate import SimulationParts
from tests.api.conftest import GOOD_CARD, Api, api_on


async def new_client(api: Api, who: str = "cab-a", **fields: object) -> str:
    answer = await api.call(who, "POST", "/v1/clients", {"name": "Boulangerie Martin", "card": GOOD_CARD, **fields})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_a_firm_subscribes_a_client_reports_usage_and_reads_its_tab_and_overview(
        simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            await api.call("cab-a", "PUT", "/v1/firm/card", {"card": GOOD_CARD})
            client = await new_client(api, external_id="BM-001")
            subscribed = await api.call("cab-a", "POST", f"/v1/clients/{client}/subscriptions",
                                        {"plan": "essentiel", "interval": "monthly", "payer": "firm"})
            assert subscribed.status_code == 201, subscribed.text
            assert subscribed.json()["payer"] == {"kind": "firm", "id": "cab-a"}
            now = (await api.sim.env.get_current_time()).isoformat()
            events = [{"event_id": f"e{i}", "client_id": client, "occurred_at": now, "documents": 1} for i in range(60)]
            usage = await api.call("cab-a", "POST", "/v1/usage-events", {"events": events + events[:5]})
            assert (usage.json()["accepted"], usage.json()["duplicates"], usage.json()["refused"]) == (60, 5, 0)
            await api.sim.settle()
            tab = (await api.call("cab-a", "GET", f"/v1/clients/{client}/subscriptions")).json()
            (line,) = tab["subscriptions"]
            assert (line["plan"]["code"], line["status"], line["payer"]["kind"]) == ("essentiel", "active", "firm")
            assert line["consumption"]["used"] == 60 and line["consumption"]["overage_documents"] == 10
            assert line["consumption"]["overage_amount"] == 250
            overview = (await api.call("cab-a", "GET", "/v1/firm/overview")).json()
            assert overview["totals"]["subscriptions"] == 1
            assert overview["totals"]["cost"] == 1900 + 250
            invoices = (await api.call("cab-a", "GET", f"/v1/clients/{client}/invoices")).json()["items"]
            assert [(i["status"], i["total"]) for i in invoices] == [("paid", 2280)]
            one = await api.call("cab-a", "GET", f"/v1/invoices/{invoices[0]['number']}")
            assert one.json()["lines"][0]["kind"] == "subscription"
    asyncio.run(main())


def test_the_change_after_a_preview_on_the_same_day_charges_exactly_the_preview(
        simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            client = await new_client(api)
            await api.call("cab-a", "POST", f"/v1/clients/{client}/subscriptions",
                           {"plan": "essentiel", "interval": "monthly", "payer": "client"})
            await api.sim.advance_to(date(2025, 9, 11))
            base = f"/v1/clients/{client}/subscriptions/einvoicing"
            before = api.snapshot()
            preview = await api.call("cab-a", "POST", f"{base}/change-plan/preview", {"plan": "standard"})
            assert preview.status_code == 200, preview.text
            assert api.snapshot() == before  # a preview changes nothing
            change = await api.call("cab-a", "POST", f"{base}/change-plan", {"plan": "standard"})
            assert change.status_code == 200, change.text
            assert change.json()["amount"] == preview.json()["amount"] == 1333, (preview.json(), change.json())
            assert change.json()["invoice_number"] is not None
    asyncio.run(main())


def test_bad_input_is_problem_json_naming_the_fields_and_writes_nothing(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            client = await new_client(api)
            before = api.snapshot()
            cases = [
                ("POST", f"/v1/clients/{client}/subscriptions", {"plan": "essentiel", "interval": "weekly",
                                                                  "payer": "firm"}, "interval"),
                ("POST", "/v1/clients", {"name": ""}, "name"),
                ("POST", "/v1/usage-events", {"events": [{"event_id": "x", "client_id": client,
                                                          "occurred_at": "2025-09-01T10:00:00", "documents": 1}]},
                 "occurred_at"),
                ("POST", "/v1/usage-events", {"events": [{"event_id": "x", "client_id": client,
                                                          "occurred_at": "2025-09-01T10:00:00Z",
                                                          "documents": 2**31}]}, "documents"),
                ("POST", f"/v1/clients/{client}/subscriptions", {"plan": "nope", "interval": "monthly",
                                                                  "payer": "firm"}, None),
            ]
            for method, path, body, field in cases:
                answer = await api.call("cab-a", method, path, body)
                assert answer.status_code == 422, (path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                problem = answer.json()
                assert problem["detail"] and problem["status"] == 422
                if field is not None:
                    assert any(field in e["field"] for e in problem["errors"]), problem
            assert api.snapshot() == before
            refused = await api.call("cab-a", "POST", "/v1/clients", {"name": "Carte illisible", "card": "0"})
            assert refused.status_code == 422 and "card" in refused.json()["detail"]
            assert api.snapshot() == before  # the client is not left behind without its card
    asyncio.run(main())


def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(
        simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            first = await api.call("cab-a", "POST", "/v1/clients", {"name": "Garage Petit"}, **{"Idempotency-Key": "k1"})
            again = await api.call("cab-a", "POST", "/v1/clients", {"name": "Garage Petit"}, **{"Idempotency-Key": "k1"})
            assert first.status_code == again.status_code == 201
            assert first.json() == again.json()
            assert again.headers.get("idempotent-replayed") == "true"
            listed = (await api.call("cab-a", "GET", "/v1/clients")).json()["items"]
            assert [c["name"] for c in listed] == ["Garage Petit"]  # created once
            other = await api.call("cab-a", "POST", "/v1/clients", {"name": "Autre"}, **{"Idempotency-Key": "k1"})
            assert other.status_code == 422
            assert "Idempotency-Key" in other.json()["detail"]
            # Keys are per caller: firm B's k1 is its own.
            theirs = await api.call("cab-b", "POST", "/v1/clients", {"name": "Garage Petit"}, **{"Idempotency-Key": "k1"})
            assert theirs.status_code == 201 and theirs.json()["firm_id"] == "cab-b"
    asyncio.run(main())

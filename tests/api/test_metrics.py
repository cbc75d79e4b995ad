"""The API's /metrics: requests by route template (never by raw path) and status, and usage
events by result, in Prometheus' text format."""
import asyncio

from starter.simulate import SimulationParts
from tests.api.conftest import GOOD_CARD, api_on
from tests.api.test_routes import new_client


def test_metrics_count_requests_by_route_and_usage_events_by_result(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            await api.call("cab-a", "PUT", "/v1/firm/card", {"card": GOOD_CARD})
            client = await new_client(api)
            await api.call("cab-a", "POST", f"/v1/clients/{client}/subscriptions",
                           {"plan": "essentiel", "interval": "monthly", "payer": "firm"})
            now = (await api.sim.env.get_current_time()).isoformat()
            events = [{"event_id": f"e{i}", "client_id": client, "occurred_at": now, "documents": 1} for i in range(3)]
            events.append({"event_id": "e0", "client_id": client, "occurred_at": now, "documents": 1})
            answer = await api.call("cab-a", "POST", "/v1/usage-events", {"events": events})
            assert answer.json()["accepted"] == 3
            await api.call("cab-a", "GET", "/v1/clients/cli_unknown/subscriptions")

            scraped = await api.http.get("/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain")
            text = scraped.text
            assert 'billing_usage_events_total{result="accepted"} 3.0' in text
            assert 'billing_usage_events_total{result="duplicate"} 1.0' in text
            assert 'billing_api_requests_total{method="POST",route="/v1/usage-events",status="200"} 1.0' in text
            assert 'route="/v1/clients/{client_id}/subscriptions",status="404"' in text
            assert client not in text  # ids never become series
            assert "billing_api_request_seconds_bucket" in text
            assert "/metrics" not in (await api.http.get("/openapi.json")).text
    asyncio.run(main())

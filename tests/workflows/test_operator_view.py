"""What operators see and scrape, on the real parts: the Temporal UI's summary, current details
and activity summaries of a subscription, and the worker's Prometheus endpoint (the SDK's
metrics and the product's counters)."""
import asyncio
import urllib.request

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.converter import DataConverter

from billing.intervals import Line
from embedded.processes import free_port
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.service import workflow_id
from starter.simulate import SimulationParts, simulation
from tests.workflows.test_lifecycle import CATALOG, START


def test_a_subscription_reads_at_a_glance_in_the_temporal_ui(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with simulation(CATALOG, simulation_parts, first_date=START) as sim:
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4242424242424242")],
                                  [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")])
            await sim.advance_to(START)
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await sim.service.change_plan(client_id="cli-1", plan_code="standard")
            await sim.settle()
            handle = sim.env.client.get_workflow_handle(workflow_id("cli-1", Line.EINVOICING))

            description = await handle.describe()
            assert await description.static_summary() == (
                "cli-1 · einvoicing · firm cab-1 · started on Essentiel monthly, paid by firm:cab-1")
            assert "Current Details" in (await description.static_details() or "")

            metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            details = metadata.current_details
            for shown in ("| Status | **active** |", "| Plan | Standard (`standard`), monthly, 39,00\u00a0€ excl. VAT |",
                          "| Payer | firm:cab-1 |", "0 / 200 documents", "| Next renewal |",
                          "| Scheduled | none |", "| Unpaid | none |"):
                assert shown in details, (shown, details)

            converter = DataConverter.default
            summaries = []
            async for event in handle.fetch_history_events():
                scheduled = event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                if scheduled and event.user_metadata.HasField("summary"):
                    summaries.append(converter.payload_converter.from_payload(event.user_metadata.summary, str))
            assert "charge F-00000001, 22,80\u00a0€" in summaries  # Essentiel: 19,00 € + 20 % VAT
            assert any(s.startswith("charge F-00000002, ") for s in summaries)  # the upgrade's prorated charge
            assert any(s.startswith("issue invoice dated ") for s in summaries)
            assert any(s.startswith("record v") and "notify upgraded to firm:cab-1" in s for s in summaries)
    asyncio.run(main())


def test_the_worker_exposes_the_sdk_metrics_and_the_products_counters(simulation_parts: SimulationParts) -> None:
    address = f"127.0.0.1:{free_port()}"

    async def main() -> str:
        async with simulation(CATALOG, simulation_parts, first_date=START, metrics_address=address) as sim:
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4000000000000341")],
                                  [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")])
            await sim.advance_to(START)
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await sim.settle()
            return await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://{address}/metrics").read().decode())

    metrics = asyncio.run(main())
    assert "billing_invoices_issued_total" in metrics
    assert 'outcome="declined"' in metrics  # the firm's card is declined: counted by outcome
    assert "billing_declines_total" in metrics
    assert "temporal_activity_execution_latency" in metrics or "temporal_workflow_completed" in metrics

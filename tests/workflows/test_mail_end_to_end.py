"""From the workflow to the mailbox: a subscription's notices, queued by the real workflow and
activities, leave as French e-mails through a real SMTP server, once each, after an outage."""
import asyncio
import re

from notices.dispatcher import MailDispatcher, SmtpDown
from notices.smtp import SmtpServer
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.simulate import SimulationParts, simulation
from store.models import Client, Firm
from tests.smtp_sink import SmtpSink
from tests.workflows.test_lifecycle import CATALOG, START


def test_a_subscriptions_notices_arrive_in_french_once_each_after_an_smtp_outage(
        simulation_parts: SimulationParts) -> None:
    sink = SmtpSink()  # not started: the SMTP server is down while the firm acts

    async def main() -> None:
        async with simulation(CATALOG, simulation_parts, first_date=START) as sim:
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4242424242424242")],
                                  [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")])
            with sim.sessions.begin() as session:
                session.get_one(Firm, "cab-1").email = "compta@cabinet-dupont.fr"
                session.get_one(Client, "cli-1").email = "contact@boulangerie.fr"
            await sim.advance_to(START)
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await sim.service.change_plan(client_id="cli-1", plan_code="standard")
            await sim.service.cancel(client_id="cli-1")
            await sim.settle()
            await sim.wait_for_documents()  # an invoice's mail carries its e-invoice (issue 11)
            mailer = MailDispatcher(sim.sessions, SmtpServer.from_url(sink.url), "Facturation <f@example.fr>")
            for _ in range(2):
                try:
                    mailer.send_due()
                    raise AssertionError("the SMTP server is down: nothing can be sent")
                except SmtpDown:
                    pass
            sink.start()
            try:
                while mailer.send_due().sent:
                    pass
                assert mailer.send_due().sent == []  # once each
            finally:
                sink.stop()

    asyncio.run(main())
    subjects = sink.subjects()
    assert len(subjects) == len(set((m["To"], m["Subject"]) for m in sink.received))  # no copy
    firm = {str(m["Subject"]): m.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            for m in sink.received if "compta@" in str(m["To"])}
    assert set(firm) == {
        "Abonnement Essentiel activé — Boulangerie Martin",
        "Facture F-00000001 — Boulangerie Martin",
        "Passage à la formule Standard — Boulangerie Martin",
        "Facture F-00000002 — Boulangerie Martin",
        "Résiliation confirmée — Boulangerie Martin",
    }
    assert "Total TTC : 22,80\u00a0€" in firm["Facture F-00000001 — Boulangerie Martin"]
    upgrade = firm["Passage à la formule Standard — Boulangerie Martin"]
    assert "L'abonnement de votre client Boulangerie Martin passe dès aujourd'hui à la formule Standard mensuelle" in upgrade
    assert "20,00\u00a0€ HT" in upgrade  # 39,00 € − 19,00 € on the period's first day (R7)
    # R5: usable until the period end (the simulation runs 28-year blocks later: any year)
    assert re.search(r"jusqu'au 01/10/\d{4} ; il ne sera pas renouvelé", firm["Résiliation confirmée — Boulangerie Martin"])
    # Each invoice's mail carries its Factur-X PDF; the others carry nothing.
    attached = {str(m["Subject"]): [(a.get_filename(), a.get_content_type()) for a in m.iter_attachments()]
                for m in sink.received if "compta@" in str(m["To"])}
    assert attached["Facture F-00000001 — Boulangerie Martin"] == [("F-00000001.pdf", "application/pdf")]
    assert attached["Facture F-00000002 — Boulangerie Martin"] == [("F-00000002.pdf", "application/pdf")]
    assert attached["Résiliation confirmée — Boulangerie Martin"] == []
    assert "La facture est jointe à ce message (F-00000001.pdf" in firm["Facture F-00000001 — Boulangerie Martin"]

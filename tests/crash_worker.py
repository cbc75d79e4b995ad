"""The worker, in its own process, dying by SIGKILL at one step of a charge (the kill tests).

    python -m tests.crash_worker TASK_QUEUE CRASH_AT MARKER      (settings from the environment)

CRASH_AT is where the process kills itself, once (MARKER records that it did):
  before_create   the attempt is recorded, Stripe not called yet
  after_create    Stripe created the PaymentIntent, its id not yet stored by us
  after_store     its id stored, not confirmed yet
  after_confirm   Stripe confirmed (charged), the result not yet stored by us
  none            never
"""
import asyncio
import os
import signal
import sys
from pathlib import Path

from adapters.stripe_gateway import IntentView, StripeGateway
from settings import Settings
from store.db import make_engine, make_session_factory
from worker import build_worker, connect, forward_core_logs


class CrashingGateway(StripeGateway):
    def __init__(self, api_key: str, api_base: str | None, crash_at: str, marker: Path) -> None:
        super().__init__(api_key, api_base)
        self.crash_at, self.marker = crash_at, marker

    def _maybe_die(self, point: str) -> None:
        if point == self.crash_at and not self.marker.exists():
            self.marker.write_text(point)
            os.kill(os.getpid(), signal.SIGKILL)

    def create_intent(self, **kwargs) -> str:  # type: ignore[no-untyped-def, override]
        self._maybe_die("before_create")
        intent_id = super().create_intent(**kwargs)
        self._maybe_die("after_create")
        return intent_id

    def confirm_intent(self, intent_id: str) -> IntentView:
        self._maybe_die("after_store")  # the activity confirms right after storing the intent's id
        view = super().confirm_intent(intent_id)
        self._maybe_die("after_confirm")
        return view


async def main(task_queue: str, crash_at: str, marker: str) -> None:
    forward_core_logs()
    settings = Settings()
    assert settings.database_url and settings.temporal_address and settings.stripe_api_base
    client = await connect(settings.temporal_address)
    gateway = CrashingGateway(settings.stripe_api_key or "sk_test_localstripe", settings.stripe_api_base,
                              crash_at, Path(marker))
    sessions = make_session_factory(make_engine(settings.database_url))
    await build_worker(client, task_queue, sessions, gateway).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

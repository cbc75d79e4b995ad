"""localstripe: a stateful Stripe-compatible server on loopback, for runs without STRIPE_API_KEY."""
import subprocess
from dataclasses import dataclass
from pathlib import Path

from embedded.processes import free_port, start_process, stop_process, venv_binary, wait_for_port

LOCALSTRIPE_KEY = "sk_test_localstripe"


@dataclass
class LocalStripe:
    api_base: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_process(self.process)


def start_localstripe(log_dir: Path, port: int | None = None) -> LocalStripe:
    port = port or free_port()
    log = log_dir / "localstripe.log"
    process = start_process([venv_binary("localstripe"), "--port", str(port), "--from-scratch"], log)
    wait_for_port(port, process, "localstripe", log)
    return LocalStripe(f"http://127.0.0.1:{port}", port, process, log)

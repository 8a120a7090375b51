"""Process facts for benchmarks, read from /proc (no extra dependency)."""

from __future__ import annotations

import os
from pathlib import Path


def memory_kib(pid: int | None = None) -> dict[str, int]:
    """VmRSS (current) and VmHWM (peak) resident set size of a process, in KiB."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    found: dict[str, int] = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, kernel: the facts docs/benchmarks.md describes the machine with."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": os.uname().release,
    }


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

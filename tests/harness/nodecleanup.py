"""Removing what a real node (tests/harness/node.py) leaves on the machine, whoever stopped it.

A node is stopped by its owner; if the owner is SIGKILLed, by the reaper process it started (which
watches the owner's pid); and in any case the next node start cleans up first. One function does it
for all three: processes (kubelet, containerd, its shims, the containers), mounts under the node's
root, pod network namespaces, the CNI state, the bridge, the iptables chain, the root itself.

`python -m tests.harness.nodecleanup --reap-after PID` is the reaper.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path("/var/lib/kar-node")
LOCK_FILE = Path("/run/lock/kar-node.lock")
BRIDGE = "kar-br0"
SUBNET = ipaddress.ip_network("10.250.0.0/24")
CNI_NETWORK = "kar-node"
NAT_CHAIN = "KAR-NODE"
OWNER_FILE = ROOT / "owner"
PIDS_DIR = ROOT / "pids"
RUNC_ROOT = ROOT / "runc"
CONTAINERD_SOCKET = ROOT / "containerd.sock"
_COMMAND_TIMEOUT = 30.0


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False)


@contextlib.contextmanager
def node_lock(*, blocking: bool = True) -> Iterator[bool]:
    """Hold the machine-wide node lock (one real node at a time); yields False if not `blocking`
    and another process holds it."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def process_identity(pid: int) -> str | None:
    """ "<pid> <start time>" (unique across pid reuse), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"


def _kill_recorded_groups() -> None:
    if not PIDS_DIR.is_dir():
        return
    for pidfile in PIDS_DIR.iterdir():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, OSError):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)


def _kill_shims() -> None:
    # Shims are started detached by containerd (their own session): found by the socket they serve.
    marker = str(CONTAINERD_SOCKET).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and b"containerd-shim" in argv[0] and marker in argv:
                os.kill(int(proc.name), signal.SIGKILL)


def _kill_containers() -> None:
    runc = shutil.which("runc")
    if runc is None or not RUNC_ROOT.is_dir():
        return
    for namespace_root in RUNC_ROOT.iterdir():
        listed = _run(runc, "--root", str(namespace_root), "list", "-q")
        for container in listed.stdout.split():
            _run(runc, "--root", str(namespace_root), "kill", "--all", container, "KILL")
            _run(runc, "--root", str(namespace_root), "delete", "--force", container)


def _unmount_under(root: Path) -> None:
    prefix = str(root) + "/"
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        _run("umount", "-l", point)


def _pod_network_namespaces() -> list[str]:
    """Network namespaces (in /run/netns) holding an address of the node's subnet."""
    netns_dir = Path("/run/netns")
    found = []
    for entry in sorted(netns_dir.iterdir()) if netns_dir.is_dir() else []:
        shown = _run("ip", "-n", entry.name, "-4", "-o", "addr", "show").stdout
        for word in shown.split():
            with contextlib.suppress(ValueError):
                if "/" in word and ipaddress.ip_interface(word).ip in SUBNET:
                    found.append(entry.name)
                    break
    return found


def _remove_network() -> None:
    for name in _pod_network_namespaces():
        _run("ip", "netns", "delete", name)
    for cached in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
        cached.unlink(missing_ok=True)
    _run("iptables", "-w", "5", "-t", "nat", "-D", "PREROUTING", "-i", BRIDGE, "-j", NAT_CHAIN)
    _run("iptables", "-w", "5", "-t", "nat", "-F", NAT_CHAIN)
    _run("iptables", "-w", "5", "-t", "nat", "-X", NAT_CHAIN)
    _run("ip", "link", "delete", BRIDGE)


def clean_node() -> None:
    """Remove everything a node may have left; safe to call when nothing is there. The caller
    holds `node_lock`."""
    _kill_recorded_groups()
    _kill_shims()
    _kill_containers()
    _unmount_under(ROOT)
    _remove_network()
    shutil.rmtree(ROOT, ignore_errors=True)


def reap_after(owner_pid: int, owner: str, poll: float = 0.5) -> None:
    """Wait until process `owner` ("<pid> <start time>") is gone, then clean up, unless a newer node
    took over the root meanwhile."""
    while process_identity(owner_pid) == owner:
        time.sleep(poll)
    with node_lock():
        with contextlib.suppress(OSError):
            if OWNER_FILE.read_text() != owner:
                return
        clean_node()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reap-after", type=int, required=True, metavar="PID")
    parser.add_argument("--owner", required=True, help='"<pid> <start time>" of the owner')
    args = parser.parse_args()
    reap_after(args.reap_after, args.owner)


if __name__ == "__main__":
    main()

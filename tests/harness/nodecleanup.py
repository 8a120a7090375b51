"""Removing what a real node (tests/harness/node.py) leaves on the machine, whoever stopped it.

A node is stopped by its owner; if the owner is SIGKILLed, by the reaper process it started (which
watches the owner's pid); and in any case the next node start cleans up first. One function does it
for all three: processes (kubelet, containerd, its shims, the containers), mounts under the node's
root, pod network namespaces, the CNI state, the bridge, the iptables chain, the root itself, and
the kubelet's own iptables chains once no other node runs.

`python -m tests.harness.nodecleanup --slot N --reap-after PID --owner ID` is the reaper.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STATE_DIR = Path("/var/lib/kar-node")
LOCK_DIR = Path("/run/lock")
#: Nodes that can run at once on one machine (each its own bridge, subnet, root and lock).
SLOTS = 8


@dataclass(frozen=True)
class NodeSlot:
    """Where node number `index` keeps everything: its names and addresses derive from the index."""

    index: int

    @property
    def root(self) -> Path:
        return STATE_DIR / str(self.index)

    @property
    def lock_file(self) -> Path:
        return LOCK_DIR / f"kar-node-{self.index}.lock"

    @property
    def bridge(self) -> str:
        return f"kar-br{self.index}"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.250.{self.index}.0/24")

    @property
    def host_address(self) -> str:
        return f"10.250.{self.index}.1"

    @property
    def node_name(self) -> str:
        return f"kar-node-{self.index}"

    @property
    def cni_network(self) -> str:
        return f"kar-node-{self.index}"

    @property
    def nat_chain(self) -> str:
        return f"KAR-NODE-{self.index}"

    @property
    def owner_file(self) -> Path:
        return self.root / "owner"

    @property
    def pids_dir(self) -> Path:
        return self.root / "pids"

    @property
    def runc_root(self) -> Path:
        return self.root / "runc"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"


_COMMAND_TIMEOUT = 30.0


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False)


def try_lock(slot: NodeSlot) -> IO[str] | None:
    """The open, locked lock file of `slot` (the lock lasts while it is open), or None if taken."""
    slot.lock_file.parent.mkdir(parents=True, exist_ok=True)
    handle = slot.lock_file.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def process_identity(pid: int) -> str | None:
    """ "<pid> <start time>" (unique across pid reuse), or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid} {stat.rsplit(')', 1)[1].split()[19]}"


def _kill_recorded_groups(slot: NodeSlot) -> None:
    if not slot.pids_dir.is_dir():
        return
    for pidfile in slot.pids_dir.iterdir():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, OSError):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)


def _kill_shims(slot: NodeSlot) -> None:
    # Shims are started detached by containerd (their own session): found by the socket they serve.
    marker = str(slot.containerd_socket).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and b"containerd-shim" in argv[0] and marker in argv:
                os.kill(int(proc.name), signal.SIGKILL)


def _kill_containers(slot: NodeSlot) -> None:
    runc = shutil.which("runc")
    if runc is None or not slot.runc_root.is_dir():
        return
    for namespace_root in slot.runc_root.iterdir():
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


def pod_network_namespaces(slot: NodeSlot) -> list[str]:
    """Network namespaces (in /run/netns) holding an address of the node's subnet."""
    netns_dir = Path("/run/netns")
    found = []
    for entry in sorted(netns_dir.iterdir()) if netns_dir.is_dir() else []:
        shown = _run("ip", "-n", entry.name, "-4", "-o", "addr", "show").stdout
        for word in shown.split():
            with contextlib.suppress(ValueError):
                if "/" in word and ipaddress.ip_interface(word).ip in slot.subnet:
                    found.append(entry.name)
                    break
    return found


def _remove_network(slot: NodeSlot) -> None:
    for name in pod_network_namespaces(slot):
        _run("ip", "netns", "delete", name)
    for cached in Path("/var/lib/cni/results").glob(f"{slot.cni_network}-*"):
        cached.unlink(missing_ok=True)
    nat = ("iptables", "-w", "5", "-t", "nat")
    _run(*nat, "-D", "PREROUTING", "-i", slot.bridge, "-j", slot.nat_chain)
    _run(*nat, "-F", slot.nat_chain)
    _run(*nat, "-X", slot.nat_chain)
    _run("ip", "link", "delete", slot.bridge)


#: Chains every kubelet creates on the host (tables they live in); shared by all nodes of the machine.
_KUBELET_CHAINS = {
    "KUBE-FIREWALL": ("filter",),
    "KUBE-KUBELET-CANARY": ("filter", "mangle", "nat"),
    "KUBE-IPTABLES-HINT": ("mangle",),
}


def _remove_kubelet_chains(slot: NodeSlot) -> None:
    """The kubelet's own chains, once no other node runs (a running kubelet would recreate them)."""
    for index in range(SLOTS):
        if index == slot.index:
            continue
        other = try_lock(NodeSlot(index))
        if other is None:
            return
        other.close()
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "mangle", "nat"):
            for hook in ("INPUT", "OUTPUT"):
                _run(tool, "-w", "5", "-t", table, "-D", hook, "-j", "KUBE-FIREWALL")
        for chain, tables in _KUBELET_CHAINS.items():
            for table in tables:
                _run(tool, "-w", "5", "-t", table, "-F", chain)
                _run(tool, "-w", "5", "-t", table, "-X", chain)


def clean_node(slot: NodeSlot) -> None:
    """Remove everything the node of `slot` may have left; safe to call when nothing is there. The
    caller holds the slot's lock."""
    _kill_recorded_groups(slot)
    _kill_shims(slot)
    _kill_containers(slot)
    _unmount_under(slot.root)
    _remove_network(slot)
    _remove_kubelet_chains(slot)
    shutil.rmtree(slot.root, ignore_errors=True)


def reap_after(slot: NodeSlot, owner_pid: int, owner: str, poll: float = 0.5) -> None:
    """Wait until process `owner` ("<pid> <start time>") is gone, then clean up, unless a newer node
    took over the slot meanwhile (it cleaned up when it did)."""
    while process_identity(owner_pid) == owner:
        time.sleep(poll)
    deadline = time.monotonic() + 60
    while (lock := try_lock(slot)) is None:
        if time.monotonic() > deadline:
            return
        time.sleep(poll)
    with lock:
        with contextlib.suppress(OSError):
            if slot.owner_file.read_text() != owner:
                return
        clean_node(slot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--reap-after", type=int, required=True, metavar="PID")
    parser.add_argument("--owner", required=True, help='"<pid> <start time>" of the owner')
    args = parser.parse_args()
    reap_after(NodeSlot(args.slot), args.reap_after, args.owner)


if __name__ == "__main__":
    main()

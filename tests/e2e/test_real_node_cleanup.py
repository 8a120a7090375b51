"""The real node leaves nothing behind when its owner is interrupted or SIGKILLed with a pod running:
no process (kubelet, containerd, shims, containers), no mount, no network namespace, no bridge, no
iptables chain, no state directory. The owner is a child process with a cluster of its own; its node
takes the next free slot beside the session's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.webhook_process import wait_for
from tests.harness import nodecleanup
from tests.harness.cluster import LocalCluster

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
OWNER = """
import json, sys, time
from tests.harness.cluster import ClusterBinaries, LocalCluster
from tests.harness.node import LocalNode
from tests.harness.podimages import push_shell_image
from pathlib import Path

binaries = ClusterBinaries(tuple(Path(p) for p in sys.argv[1:]))
with LocalCluster(binaries) as cluster, LocalNode(cluster) as node:
    pusher = node.registry.pusher()
    push_shell_image(pusher, "t/sleeper", "latest", seed=5)
    cluster.kubectl("create", "namespace", "owner")
    node.watch_namespace("owner")
    cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", "owner", "--timeout=30s")
    cluster.kubectl("run", "sleeper", "-n", "owner", f"--image={node.registry.host}/t/sleeper:latest")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "-n", "owner", "--timeout=90s")
    print(json.dumps({"slot": node.slot.index}), flush=True)
    time.sleep(600)
"""


def leftovers(slot: nodecleanup.NodeSlot) -> dict[str, Any]:
    """What of the node of `slot` is still on the machine (empty values: nothing)."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    chains = subprocess.run(
        ["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True, check=False
    ).stdout
    marker = str(slot.containerd_socket).encode()
    shims = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in argv:
                shims.append(int(proc.name))
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(slot.root))
    ]
    return {
        "bridge": f" {slot.bridge}:" in links,
        "chain": slot.nat_chain in chains,
        "processes": shims,
        "mounts": mounts,
        "netns": nodecleanup.pod_network_namespaces(slot),
        "root": slot.root.exists(),
    }


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_owner_of_a_running_pod_leaves_nothing(
    cluster: LocalCluster, sig: signal.Signals
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", OWNER, *map(str, cluster.binaries.path_dirs)],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline() or "null")
        assert started is not None, child.communicate(timeout=10)[1][-3000:]
        slot = nodecleanup.NodeSlot(started["slot"])
        during = leftovers(slot)
        assert all(during[what] for what in ("bridge", "chain", "processes", "netns", "mounts", "root")), (
            during
        )
        child.send_signal(sig)
        child.wait(timeout=30)
        wait_for("the node's clean-up", lambda: not any(leftovers(slot).values()), timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert leftovers(slot) == {
        "bridge": False, "chain": False, "processes": [], "mounts": [], "netns": [], "root": False,
    }  # fmt: skip

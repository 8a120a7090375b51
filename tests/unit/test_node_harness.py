"""The pure parts of the real node's harness: slot naming, which pods the node binds, the busybox layer."""

from __future__ import annotations

import io
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.harness.node import may_run_on
from tests.harness.nodecleanup import SLOTS, NodeSlot
from tests.harness.nodeconfig import cni_config, containerd_config, kubelet_config
from tests.harness.podimages import busybox_layer

pytestmark = pytest.mark.unit


def test_slots_never_share_a_bridge_subnet_root_lock_or_chain() -> None:
    slots = [NodeSlot(i) for i in range(SLOTS)]
    for attribute in ("bridge", "subnet", "root", "lock_file", "nat_chain", "node_name", "host_address"):
        assert len({getattr(s, attribute) for s in slots}) == SLOTS, attribute
    for slot in slots:
        assert slot.host_address in {str(a) for a in slot.subnet.hosts()}
        assert len(slot.bridge) <= 15  # IFNAMSIZ - 1


def _daemonset_pod(node: str) -> dict[str, object]:
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    required = {"nodeSelectorTerms": [term]}
    return {
        "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}
    }


def test_the_node_binds_free_pods_and_its_own_daemonset_pods_only() -> None:
    assert may_run_on({"spec": {}}, "kar-node-0")
    assert may_run_on(_daemonset_pod("kar-node-0"), "kar-node-0")
    assert not may_run_on(_daemonset_pod("sim-node"), "kar-node-0")


def test_busybox_layer_holds_the_static_binary_and_its_applet_links() -> None:
    with tarfile.open(fileobj=io.BytesIO(busybox_layer())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/busybox"].mode & 0o111
    assert members["bin/sh"].issym()
    assert members["bin/sh"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777


def test_configs_keep_everything_in_the_slot_and_on_its_addresses() -> None:
    slot = NodeSlot(3)
    containerd = tomllib.loads(containerd_config(slot, "10.250.3.1:5000/kar/pause:3.10"))
    cri = containerd["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["Root"] == str(slot.runc_root)
    assert containerd["grpc"]["address"] == str(slot.containerd_socket)
    paths = [containerd["root"], containerd["state"], cri["cni"]["conf_dir"], cri["registry"]["config_path"]]
    assert all(path.startswith(f"{slot.root}/") for path in paths)
    kubelet = kubelet_config(slot, 10250, 10248, Path("/ca.crt"))
    assert kubelet["address"] == slot.host_address == "10.250.3.1"
    assert (kubelet["failCgroupV1"], kubelet["cgroupDriver"], kubelet["cgroupsPerQOS"]) == (
        False,
        "cgroupfs",
        False,
    )
    assert kubelet["authentication"]["anonymous"] == {"enabled": False}
    [bridge] = cni_config(slot)["plugins"]
    assert (bridge["bridge"], bridge["ipam"]["ranges"]) == (
        "kar-br3",
        [[{"subnet": "10.250.3.0/24", "gateway": "10.250.3.1"}]],
    )

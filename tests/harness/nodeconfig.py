"""The configuration files of a real node (tests/harness/node.py), as pure functions of its slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.harness.nodecleanup import NodeSlot

CNI_BIN_DIR = "/usr/lib/cni"


def cni_config(slot: NodeSlot) -> dict[str, Any]:
    """A CNI network list: Debian's bridge plugin on the slot's bridge, addresses from host-local."""
    return {
        "cniVersion": "1.0.0",
        "name": slot.cni_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": slot.bridge,
                "isGateway": True,
                "isDefaultGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(slot.subnet), "gateway": slot.host_address}]],
                    "dataDir": str(slot.root / "cni" / "ipam"),
                },
            }
        ],
    }


def containerd_config(slot: NodeSlot, sandbox_image: str) -> str:
    """containerd 1.6's config (version 2): everything under the slot's root, its own runc root, the
    CRI with the node's CNI network and a hosts directory per trusted registry."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{slot.root}/containerd"
state = "{slot.root}/containerd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{slot.containerd_socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{slot.root}/opt"
[{cri}]
  sandbox_image = "{sandbox_image}"
  # This VM refuses to lower oom_score_adj; without this runc fails ("can't get final child's PID").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  Root = "{slot.runc_root}"
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{slot.root}/cni/net.d"
[{cri}.registry]
  config_path = "{slot.root}/certs.d"
"""


def kubelet_config(slot: NodeSlot, port: int, healthz_port: int, ca_file: Path) -> dict[str, Any]:
    """The KubeletConfiguration: its API on the bridge address (client certificates of the cluster
    CA only), healthz on loopback, and what this cgroup v1 machine needs."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # These machines run cgroup v1, which newer kubelets refuse unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": f"unix://{slot.containerd_socket}",
        "address": slot.host_address,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "resolvConf": str(slot.root / "resolv.conf"),
        "failSwapOn": False,
        "serializeImagePulls": False,
        "podCIDR": str(slot.subnet),
        "maxPods": 30,
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
    }

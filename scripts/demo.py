"""The README's demo, narrated like a terminal session: `make demo`.

A local control plane with a real node (kubelet + containerd), a local registry, an image pushed under
a mutable tag, a labeled Deployment whose pods the node pulls and runs, then kube-autorollout's part:
the digest the webhook records at apply time and the rollout the reconciler triggers when the tag
moves. Everything it starts is stopped at the end (also on Ctrl-C), so it can run twice in a row.
`--hold` keeps the cluster up until Enter, to look around.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as `python scripts/demo.py` from anywhere

import httpx  # noqa: E402

from tests.harness.cluster import ClusterBinaries, LocalCluster, free_ports, install_binaries  # noqa: E402
from tests.harness.node import LocalNode  # noqa: E402
from tests.harness.oci import OciPusher  # noqa: E402
from tests.harness.podimages import push_shell_image  # noqa: E402
from tests.harness.registry import LocalRegistry, start_registry  # noqa: E402

NAMESPACE = "demo"
REPOSITORY = "demo/web"
TAG = "stable"
ENABLED_LABEL = "kube-autorollout/enabled"
CLI = str(Path(sys.executable).with_name("kube-autorollout"))


class Narrator:
    """Prints numbered steps, the commands run (as a user would type them) and their output."""

    def __init__(self) -> None:
        self._step = 0

    def step(self, title: str) -> None:
        self._step += 1
        print(f"\n=== {self._step}. {title}", flush=True)

    def say(self, text: str) -> None:
        for line in text.splitlines():
            print(f"    {line}", flush=True)

    def command(self, argv: list[str], output: str) -> None:
        print(f"  $ {shlex.join(argv)}", flush=True)
        for line in output.rstrip().splitlines():
            print(f"  {line}", flush=True)


@dataclass
class Demo:
    """What the stages share: the running cluster and registry, and the image under its mutable tag."""

    narrator: Narrator
    cluster: LocalCluster
    registry: LocalRegistry
    config: Path
    probe_port: int = 0

    @property
    def image(self) -> str:
        return f"{self.registry.host}/{REPOSITORY}:{TAG}"

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """Run kubectl against the demo cluster and show it as `kubectl ...` with its output."""
        result = self.cluster.kubectl(*args, input=input)
        self.narrator.command(["kubectl", *args], result.stdout + result.stderr)
        return result.stdout

    def cli(self, *args: str) -> str:
        """Run the kube-autorollout command line and show it with its output."""
        result = subprocess.run(
            [CLI, *args], capture_output=True, text=True, env=self.cluster.env, timeout=60, check=False
        )
        self.narrator.command(["kube-autorollout", *args], result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"kube-autorollout {args[0]} exited with {result.returncode}")
        return result.stdout


# --- stages --------------------------------------------------------------------------------------


def stage_binaries(narrator: Narrator) -> ClusterBinaries:
    narrator.step("Cluster binaries (built once from their Go modules, then cached)")
    narrator.say("$ scripts/install-cluster-binaries.sh")
    binaries = install_binaries()
    narrator.say("\n".join(str(d) for d in binaries.path_dirs))
    return binaries


def stage_control_plane(
    narrator: Narrator, binaries: ClusterBinaries, stack: contextlib.ExitStack
) -> LocalCluster:
    narrator.step("Local control plane: etcd, kube-apiserver, kube-controller-manager on 127.0.0.1")
    cluster = LocalCluster(binaries).start()
    stack.push(lambda exc_type, _exc, _tb: _stop_cluster(narrator, cluster, failed=_is_failure(exc_type)))
    timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in cluster.timings.items())
    narrator.say(f"API server {cluster.server}, ready in {timings}")
    major, minor = cluster.server_version
    narrator.say(
        f"Kubernetes {major}.{minor}; kubectl: {cluster.kubectl_path.readlink()} (within one minor of it)"
    )
    narrator.say(f"export KUBECONFIG={cluster.kubeconfig}   # to follow along in another terminal")
    return cluster


def stage_registry(narrator: Narrator, workdir: Path, stack: contextlib.ExitStack) -> LocalRegistry:
    narrator.step("Local OCI registry (CNCF distribution, plain HTTP on 127.0.0.1)")
    registry = start_registry("plain", workdir / "registry")
    stack.callback(registry.stop)
    narrator.say(f"registry at {registry.url}")
    return registry


def stage_push_image(demo: Demo, *, seed: int) -> str:
    demo.narrator.step(f"Push an image under the mutable tag {TAG!r}")
    digest = push_demo_image(demo, seed)
    demo.narrator.say(f"{demo.image} -> {digest}")
    demo.narrator.say(
        "(Debian's static busybox in one layer plus a layer of its own: built here, no Docker Hub)"
    )
    return digest


def push_demo_image(demo: Demo, seed: int) -> str:
    pusher = OciPusher(demo.registry.url)
    try:
        return push_shell_image(pusher, REPOSITORY, TAG, seed=seed)
    finally:
        pusher.close()


def stage_real_node(demo: Demo, stack: contextlib.ExitStack) -> None:
    demo.narrator.step("A real node: kubelet + containerd + runc, pods on the bridge kar-br0 (as root)")
    node = LocalNode(demo.cluster)
    stack.enter_context(node)
    stack.callback(
        demo.narrator.say, "real node stopped: processes, mounts, netns, bridge and iptables chain removed"
    )
    node.trust_registry(demo.registry)
    node.watch_namespace(NAMESPACE)
    timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in node.timings.items())
    demo.narrator.say(f"node kar-node Ready ({timings}); containerd pulls from {demo.registry.host}")
    demo.kubectl("get", "nodes", "-o", "wide")


def stage_kube_autorollout(demo: Demo, workdir: Path, stack: contextlib.ExitStack) -> None:
    """Mint the webhook's certificate, start `kube-autorollout run`, register the webhook."""
    narrator = demo.narrator
    narrator.step("Start kube-autorollout: webhook + reconciler in one process")
    tls_dir = workdir / "tls"
    demo.cli("certs", "generate", "--out", str(tls_dir), "--dns", "localhost", "--ip", "127.0.0.1")
    webhook_port, probe_port = free_ports(2)
    config = workdir / "config.yaml"
    config.write_text(
        'cronSchedule: "*/2 * * * * *"   # every 2 seconds, for the demo\n'
        f"webserver:\n  port: {probe_port}\n"
        f"reconciler:\n  namespaces: [{NAMESPACE}]\n"
        "webhook:\n  imagePullPolicy: mutate\n"
    )
    narrator.say(f"$ cat {config}")
    narrator.say(config.read_text())
    argv = [
        CLI, "run", "--config", str(config), "--kubeconfig", str(demo.cluster.kubeconfig),
        "--tls-cert", str(tls_dir / "tls.crt"), "--tls-key", str(tls_dir / "tls.key"),
        "--webhook-host", "127.0.0.1", "--webhook-port", str(webhook_port),
    ]  # fmt: skip
    log_path = workdir / "kube-autorollout.log"
    narrator.say(f"$ kube-autorollout {shlex.join(argv[1:])} &> {log_path}")
    log_file = stack.enter_context(log_path.open("wb"))
    process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=demo.cluster.env)
    stack.callback(_stop_process, narrator, process)
    _wait_until(
        "kube-autorollout ready",
        lambda: _probe(f"http://127.0.0.1:{probe_port}/readyz") == 204 or process.poll() is not None,
    )
    if process.poll() is not None:
        raise RuntimeError(f"kube-autorollout exited: {log_path.read_text()[-2000:]}")
    narrator.say(f"GET http://127.0.0.1:{probe_port}/readyz -> 204")
    demo.probe_port = probe_port
    demo.kubectl("create", "namespace", NAMESPACE)
    demo.cli(
        "certs", "webhook-config", "--name", "kube-autorollout-demo",
        "--url", f"https://127.0.0.1:{webhook_port}/mutate", "--ca-file", str(tls_dir / "ca.crt"),
        "--namespace", NAMESPACE, "--apply", "--kubeconfig", str(demo.cluster.kubeconfig),
    )  # fmt: skip
    stack.callback(
        demo.cluster.kubectl,
        "delete", "mutatingwebhookconfiguration", "kube-autorollout-demo", "--ignore-not-found",
    )  # fmt: skip
    demo.kubectl("get", "mutatingwebhookconfiguration", "kube-autorollout-demo")


def stage_apply_deployment(demo: Demo) -> None:
    demo.narrator.step(f"Apply a Deployment labeled {ENABLED_LABEL}=true that runs {demo.image}")
    demo.narrator.say("(its container sets no imagePullPolicy: the webhook sets Always and says so)")
    demo.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=deployment_manifest(demo.image))
    _wait_for_replicasets(demo, 1)
    demo.kubectl("rollout", "status", "-n", NAMESPACE, "deployment/web", "--timeout=60s")
    demo.kubectl("get", "deploy,rs", "-n", NAMESPACE, "-o", "wide")
    show_recorded_digest(demo)
    show_running_digests(demo)


def stage_tag_moves(demo: Demo, *, seed: int) -> str:
    narrator = demo.narrator
    narrator.step(f"CI pushes a new image under the same tag {TAG!r}")
    digest = push_demo_image(demo, seed)
    narrator.say(f"{demo.image} -> {digest}")
    narrator.say("the reconciler's next cycle (every 2 s here) finds the tag moved and rolls the Deployment")
    _wait_for_replicasets(demo, 2)
    demo.kubectl("rollout", "status", "-n", NAMESPACE, "deployment/web", "--timeout=60s")
    demo.kubectl("get", "rs", "-n", NAMESPACE, "-l", "app=web")
    show_recorded_digest(demo)
    demo.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector", "reason=RolloutTriggered",
        "-o", "custom-columns=LAST SEEN:.lastTimestamp,REASON:.reason,OBJECT:.involvedObject.name,"
        "MESSAGE:.message",
    )  # fmt: skip
    _wait_until("the old pod gone", lambda: _pod_count(demo) == 1)
    show_running_digests(demo)
    demo.narrator.say("the kubelet pulled the tag again for the new pod (imagePullPolicy: Always):")
    demo.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector", "reason=Pulled",
        "-o", "custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message",
    )  # fmt: skip
    return digest


def stage_status(demo: Demo) -> None:
    demo.narrator.step("Ask kube-autorollout what it sees")
    demo.cli("status", "--kubeconfig", str(demo.cluster.kubeconfig), "--config", str(demo.config))
    metrics = httpx.get(f"http://127.0.0.1:{demo.probe_port}/metrics", timeout=5).text
    wanted = ("kube_autorollout_rollouts_total", "kube_autorollout_admission_requests_total",
              "kube_autorollout_registry_requests_total", "kube_autorollout_cycles_total")  # fmt: skip
    lines = [line for line in metrics.splitlines() if line.startswith(wanted)]
    demo.narrator.command(["curl", "-s", f"http://127.0.0.1:{demo.probe_port}/metrics"], "\n".join(lines))


# --- helpers -------------------------------------------------------------------------------------


def show_recorded_digest(demo: Demo) -> None:
    """The digest annotation the webhook records and the pull policy it enforces (<none> without it)."""
    columns = [
        "NAME:.metadata.name",
        r"RECORDED:.metadata.annotations.digest\.kube-autorollout/web",
        "PULL:.spec.template.spec.containers[0].imagePullPolicy",
        r"RESTARTED-AT:.spec.template.metadata.annotations.kube-autorollout/restartedAt",
    ]
    demo.kubectl("get", "deploy", "-n", NAMESPACE, "-o", "custom-columns=" + ",".join(columns))


def show_running_digests(demo: Demo) -> None:
    """What the pods run: the imageID the kubelet reported after pulling."""
    columns = ["POD:.metadata.name", "PHASE:.status.phase", "IMAGE-ID:.status.containerStatuses[0].imageID"]
    demo.kubectl("get", "pods", "-n", NAMESPACE, "-o", "custom-columns=" + ",".join(columns))


def deployment_manifest(image: str) -> str:
    """The demo's Deployment: opted in by label, pulling its mutable tag on every start."""
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web, {ENABLED_LABEL}: "true"}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: web
          image: {image}
"""


def _wait_for_replicasets(demo: Demo, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        names = demo.cluster.kubectl(
            "get", "rs", "-n", NAMESPACE, "-l", "app=web", "-o", "name"
        ).stdout.split()
        if len(names) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"kube-controller-manager made {len(names)} ReplicaSet(s), expected {count}")
        time.sleep(0.2)


def _pod_count(demo: Demo) -> int:
    return len(demo.cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").stdout.split())


def _wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(0.1)


def _probe(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _stop_process(narrator: Narrator, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    narrator.say(f"kube-autorollout stopped (exit code {process.returncode})")


def _is_failure(exc_type: type[BaseException] | None) -> bool:
    """An error keeps the cluster's logs for a look; success and Ctrl-C do not."""
    return exc_type is not None and not issubclass(exc_type, KeyboardInterrupt)


def _stop_cluster(narrator: Narrator, cluster: LocalCluster, *, failed: bool) -> None:
    cluster.stop(keep_run_dir=failed)
    narrator.say("control plane stopped" + (f", logs kept in {cluster.run_dir}" if failed else ""))


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kar-demo-") as path:
        yield Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", action="store_true", help="keep everything running until Enter is pressed")
    args = parser.parse_args(argv)
    narrator = Narrator()
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(_workdir())
        binaries = stage_binaries(narrator)
        cluster = stage_control_plane(narrator, binaries, stack)
        registry = stage_registry(narrator, workdir, stack)
        demo = Demo(narrator, cluster, registry, config=workdir / "config.yaml")
        first = stage_push_image(demo, seed=1)
        stage_real_node(demo, stack)
        stage_kube_autorollout(demo, workdir, stack)
        stage_apply_deployment(demo)
        second = stage_tag_moves(demo, seed=2)
        stage_status(demo)

        narrator.step("Summary")
        narrator.say(f"apply: the webhook recorded {first[:19]}... and enforced imagePullPolicy: Always")
        narrator.say(f"push:  the tag moved to {second[:19]}...; the reconciler patched restartedAt, a new")
        narrator.say("       ReplicaSet rolled the pods, and they run the new digest")
        if args.hold:
            input(f"\nKUBECONFIG={cluster.kubeconfig}; press Enter to stop everything ")
        narrator.step("Clean up")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo started is stopped", file=sys.stderr)
        sys.exit(130)

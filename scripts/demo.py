"""The README's demo, narrated like a terminal session: `make demo`.

A local control plane and a local registry, an image pushed under a mutable tag, a labeled Deployment
that uses it, then kube-autorollout's part: the digest the webhook records at apply time and the
rollout the reconciler triggers when the tag moves. Everything it starts is stopped at the end (also on
Ctrl-C), so it can run twice in a row. `--hold` keeps the cluster up until Enter, to look around.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as `python scripts/demo.py` from anywhere

from tests.harness.cluster import ClusterBinaries, LocalCluster, install_binaries  # noqa: E402
from tests.harness.registry import LocalRegistry, start_registry  # noqa: E402

NAMESPACE = "demo"
REPOSITORY = "demo/web"
TAG = "stable"
ENABLED_LABEL = "kube-autorollout/enabled"


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

    @property
    def image(self) -> str:
        return f"{self.registry.host}/{REPOSITORY}:{TAG}"

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """Run kubectl against the demo cluster and show it as `kubectl ...` with its output."""
        result = self.cluster.kubectl(*args, input=input)
        self.narrator.command(["kubectl", *args], result.stdout + result.stderr)
        return result.stdout


@dataclass(frozen=True)
class Missing:
    """A stage that is not there yet, and the issue that brings it."""

    stage: str
    issue: int
    shows: str


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
    narrator.say("No scheduler and no kubelet: pods stay Pending. Rollouts are about the pod template and")
    narrator.say("the ReplicaSets kube-controller-manager makes from it, and those are all real here.")
    return cluster


def stage_registry(narrator: Narrator, workdir: Path, stack: contextlib.ExitStack) -> LocalRegistry:
    narrator.step("Local OCI registry (CNCF distribution, plain HTTP on 127.0.0.1)")
    registry = start_registry("plain", workdir / "registry")
    stack.callback(registry.stop)
    narrator.say(f"registry at {registry.url}")
    return registry


def stage_push_image(demo: Demo, *, seed: int) -> str:
    demo.narrator.step(f"Push an image under the mutable tag {TAG!r}")
    digest = demo.registry.push_image(REPOSITORY, TAG, seed=seed)
    demo.narrator.say(f"{demo.image} -> {digest}")
    return digest


def stage_webhook(demo: Demo) -> Missing:
    """Start kube-autorollout's admission webhook and register it (MutatingWebhookConfiguration)."""
    demo.narrator.step("kube-autorollout admission webhook")
    return Missing(
        "admission webhook",
        4,
        f"the digest of {demo.image} recorded as digest.kube-autorollout/web, imagePullPolicy enforced",
    )


def stage_apply_deployment(demo: Demo) -> None:
    demo.narrator.step(f"Apply a Deployment labeled {ENABLED_LABEL}=true that runs {demo.image}")
    demo.kubectl("create", "namespace", NAMESPACE)
    demo.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=deployment_manifest(demo.image))
    _wait_for_replicasets(demo, 1)
    demo.kubectl("get", "deploy,rs", "-n", NAMESPACE, "-o", "wide")
    show_recorded_digest(demo)


def stage_reconciler(demo: Demo) -> Missing:
    """Run kube-autorollout's reconciler against the demo namespace."""
    demo.narrator.step("kube-autorollout reconciler")
    return Missing(
        "reconciler",
        5,
        f"a new image pushed under {TAG!r}, then a new ReplicaSet, the restartedAt annotation and the "
        "RolloutTriggered Event",
    )


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
      containers:
        - name: web
          image: {image}
          imagePullPolicy: Always
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
        demo = Demo(narrator, cluster, registry)
        stage_push_image(demo, seed=1)
        missing = [stage_webhook(demo)]
        narrator.say(f"not yet: comes with issue {missing[-1].issue}")
        stage_apply_deployment(demo)
        missing.append(stage_reconciler(demo))
        narrator.say(f"not yet: comes with issue {missing[-1].issue}")

        narrator.step("Summary")
        narrator.say("shown: a real control plane and registry, a labeled Deployment and its ReplicaSet")
        for gap in missing:
            narrator.say(f"missing: the {gap.stage} (issue {gap.issue}) would show {gap.shows}")
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

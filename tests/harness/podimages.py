"""Images a real node can run, built here: no image comes from the internet.

Each is Debian's static busybox (`busybox-static`) in one layer plus a small layer of its own, pushed
as OCI layers with the tests' own client (tests/harness/oci.py). The busybox layer is the same bytes in
every image, so a registry stores it once; the second layer makes every push a new digest.
"""

from __future__ import annotations

import functools
import io
import random
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

from tests.harness.oci import OciPusher
from tests.harness.registry import LocalRegistry

BUSYBOX = Path("/bin/busybox")
PAUSE_REPOSITORY = "kar/pause"
PAUSE_TAG = "3.10"
#: Runs until SIGTERM (PID 1 has no default handler, so the trap is what lets it stop at once).
SERVE_FOREVER = "trap 'exit 0' TERM; echo started; while :; do sleep 1 & wait $!; done"


class PodImageError(Exception):
    """The static busybox the pod images are made of is missing."""


@functools.cache
def busybox_layer() -> bytes:
    """An uncompressed tar layer: bin/busybox (static) and bin/sh, bin/sleep linked to it."""
    source = BUSYBOX if BUSYBOX.is_file() else Path(shutil.which("busybox") or "/nonexistent")
    if not source.is_file():
        raise PodImageError("busybox not found: install Debian's busybox-static (make system-deps)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755, 0
            tar.addfile(info)
        data = source.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
        for applet in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode, link.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
            tar.addfile(link)
    return buffer.getvalue()


def _marker_layer(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("marker")
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def push_shell_image(
    pusher: OciPusher,
    repository: str,
    tag: str | None,
    script: str = SERVE_FOREVER,
    *,
    seed: int | None = None,
    platform: str = "linux/amd64",
) -> str:
    """Push an image whose entrypoint is `sh -c script` under `tag` (None: by digest only); a new
    `seed` (random when None) makes a new digest. Returns the manifest digest."""
    marker = random.Random(seed).randbytes(16).hex().encode()
    config: dict[str, object] = {
        "Entrypoint": ["/bin/sh", "-c", script],
        "Env": ["PATH=/bin"],
        "Labels": {"marker": marker.decode()},
    }
    return pusher.push_layers(
        repository, tag, [busybox_layer(), _marker_layer(marker)], config, platform=platform
    )


def push_shell_index(
    pusher: OciPusher,
    repository: str,
    tag: str,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    script: str = SERVE_FOREVER,
    *,
    seed: int | None = None,
) -> tuple[str, dict[str, str]]:
    """An OCI index over one shell image per platform (the busybox layer is amd64's: only that entry
    runs here); returns (index digest, {platform: manifest digest})."""
    rng = random.Random(seed)
    by_platform = {
        platform: push_shell_image(
            pusher, repository, None, script, seed=rng.randrange(2**62), platform=platform
        )
        for platform in platforms
    }
    return pusher.push_index_over(repository, tag, by_platform), by_platform


def push_pause_image(pusher: OciPusher) -> str:
    """The pod sandbox image (what registry.k8s.io/pause is elsewhere): a process that sleeps."""
    return push_shell_image(pusher, PAUSE_REPOSITORY, PAUSE_TAG, SERVE_FOREVER, seed=0)


def push_runnable(registry: LocalRegistry, repository: str, tag: str, *, seed: int | None = None) -> str:
    """`registry.push_image` for images a real node runs (`SERVE_FOREVER`); returns the digest."""
    pusher = registry.pusher()
    try:
        return push_shell_image(pusher, repository, tag, seed=seed)
    finally:
        pusher.close()

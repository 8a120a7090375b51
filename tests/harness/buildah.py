"""buildah on the harness's own storage under ~/.cache/kube-autorollout/image/ (or `$KAR_CACHE`):
run it, inspect an image, mount an image's root file system. Daemonless, as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("KAR_CACHE", Path.home() / ".cache" / "kube-autorollout")) / "image"


class ImageBuildError(RuntimeError):
    """A build step failed; the message carries the tail of its output."""


def storage_driver() -> str:
    """overlay where the kernel has it (a build then stores each layer once: about 0.7 GB); else vfs,
    which works on any file system but copies the whole root file system at every step (14 GB and
    several times slower for this Dockerfile). `KAR_STORAGE_DRIVER` overrides."""
    chosen = os.environ.get("KAR_STORAGE_DRIVER")
    if chosen:
        return chosen
    with contextlib.suppress(OSError):
        if "\toverlay\n" in Path("/proc/filesystems").read_text():
            return "overlay"
    return "vfs"


def buildah_argv(*args: str) -> list[str]:
    """`buildah` on the harness's own storage (as root, no daemon)."""
    driver = storage_driver()
    return [
        "buildah",
        "--root",
        str(CACHE / f"storage-{driver}"),
        "--runroot",
        str(CACHE / f"run-{driver}"),
        "--storage-driver",
        driver,
        *args,
    ]


def buildah(*args: str, timeout: float = 1800.0) -> str:
    """Run buildah; its stdout, or ImageBuildError with the output's tail."""
    result = subprocess.run(
        buildah_argv(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise ImageBuildError(
            f"buildah {args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def image_exists(name: str) -> bool:
    result = subprocess.run(
        buildah_argv("inspect", "--type", "image", name), capture_output=True, timeout=60, check=False
    )
    return result.returncode == 0


def inspect(name: str) -> dict[str, Any]:
    """`buildah inspect` of an image (its OCI config under ["OCIv1"])."""
    result: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", name))
    return result


@contextlib.contextmanager
def mounted_rootfs(image: str) -> Iterator[Path]:
    """The image's root file system, mounted from a working container for as long as the block runs."""
    container = buildah("from", "--pull-never", image).strip()
    try:
        yield Path(buildah("mount", container).strip())
    finally:
        subprocess.run(buildah_argv("umount", container), capture_output=True, timeout=120, check=False)
        subprocess.run(buildah_argv("rm", container), capture_output=True, timeout=120, check=False)

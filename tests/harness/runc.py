"""Run a command in a container of an image from buildah's storage with runc, as the image says."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.harness.buildah import inspect, mounted_rootfs


def runc_config(rootfs: Path, config: dict[str, Any], args: Sequence[str]) -> dict[str, Any]:
    """A runc bundle config that runs `args` as the image would run: its user, env and working
    directory, a read-only root, a tmpfs on /tmp, no network, no capabilities."""
    user, _, group = str(config.get("User") or "0:0").partition(":")
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": int(user), "gid": int(group or user)},
            "args": list(args),
            "env": list(config.get("Env") or []),
            "cwd": config.get("WorkingDir") or "/",
            "capabilities": {"bounding": [], "effective": [], "permitted": [], "ambient": []},
            "noNewPrivileges": True,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "kube-autorollout",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=65536k"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def run_in_image(
    image: str, args: Sequence[str], *, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run `args` in a container of `image` with runc, as the image says (user, env, working
    directory), on a read-only root. Returns the finished process (not checked)."""
    config = inspect(image)["OCIv1"]["config"]
    with mounted_rootfs(image) as rootfs, tempfile.TemporaryDirectory(prefix="kar-runc-") as bundle:
        (Path(bundle) / "config.json").write_text(json.dumps(runc_config(rootfs, config, args)))
        name = f"kar-image-{os.getpid()}-{time.monotonic_ns()}"
        try:
            return subprocess.run(
                ["runc", "--root", str(Path(bundle) / "state"), "run", "--bundle", bundle, name],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        finally:
            subprocess.run(
                ["runc", "--root", str(Path(bundle) / "state"), "delete", "--force", name],
                capture_output=True,
                timeout=30,
                check=False,
            )

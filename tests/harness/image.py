"""Build the product image for real, daemonless, and push it to a local registry.

The base is a Debian bookworm root file system with Debian's python3, made on this machine by
`mmdebstrap` (Docker Hub is unreachable here) and imported into buildah's storage; the Dockerfile is
built on it by `buildah bud --isolation chroot` (overlay storage, vfs where the kernel has no
overlay), passed through its `PYTHON_IMAGE` argument (tests/harness/runc.py runs it). Both are
cached under ~/.cache/kube-autorollout/image/ (or `$KAR_CACHE`), keyed by their inputs: the base by
the mmdebstrap command line, the image by the base and every file the build context lets through. A
fresh machine builds both unattended (progress on stderr); a rerun with unchanged inputs builds
nothing. pip in the builder stage gets the machine's CA bundle and index settings as build secrets
only, never as a layer.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.harness.buildah import CACHE, ImageBuildError, buildah, buildah_argv, image_exists, storage_driver
from tests.harness.registry import LocalRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_NAME = "localhost/kube-autorollout"
BASE_NAME = "localhost/kube-autorollout-base"
#: The machine's CA bundle: pip in the builder stage needs it to reach the package index.
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Appended to each build secret (outside any PEM block, so pip ignores it): a test searches the final
#: image for it, which finds a leaked secret even where the image has a CA bundle of its own.
SECRET_MARKER = b"# kube-autorollout build secret, never in an image layer\n"
#: The paths of the Dockerfile's COPY steps (.dockerignore lets exactly these through).
CONTEXT_PATHS = (
    "constraints.txt",
    "pyproject.toml",
    "README.md",
    "autorollout",
    "webhook",
    "reconciler",
    "certs",
)
# A minimal Debian with Debian's python3 (3.11 in bookworm), without recommends, documentation,
# manual pages and translations (copyright files kept); merged /usr by mmdebstrap's hook rather than
# the usrmerge package, which would bring perl.
BASE_COMMAND = (
    "mmdebstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,python-is-python3",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    '--aptopt=APT::Install-Recommends "false"',
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "bookworm",
)
# pip settings of this machine that reach the builder (as the `pip-conf` secret): where the index is
# and how to get there. Paths (cert, find-links) are this machine's and mean nothing in the builder.
_FORWARDED_PIP_KEYS = (
    "index-url",
    "extra-index-url",
    "trusted-host",
    "proxy",
    "timeout",
    "default-timeout",
    "retries",
)


@dataclass(frozen=True)
class BuiltImage:
    """An image in the harness's buildah storage: `name` ("localhost/kube-autorollout:<key>")."""

    name: str
    key: str
    base: str


def _progress(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    # One build at a time on this machine: other test sessions wait and then find it cached.
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def base_key() -> str:
    return hashlib.sha256("\0".join(BASE_COMMAND).encode()).hexdigest()[:16]


def base_image() -> str:
    """The Debian python3 base in buildah's storage ("localhost/kube-autorollout-base:<key>")."""
    name = f"{BASE_NAME}:{base_key()}"
    if image_exists(name):
        return name
    tarball = CACHE / f"base-{base_key()}.tar"
    if not tarball.exists():
        _progress(f"making the Debian base with mmdebstrap (2-4 minutes) into {tarball}")
        started = time.monotonic()
        partial = tarball.with_name(tarball.name + ".partial")
        with (CACHE / "mmdebstrap.log").open("w") as log:
            result = subprocess.run(
                ["nice", *BASE_COMMAND[:-1], "--format=tar", BASE_COMMAND[-1], str(partial)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=1800,
                check=False,
            )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = (CACHE / "mmdebstrap.log").read_text(errors="replace")[-2000:]
            raise ImageBuildError(f"mmdebstrap failed ({result.returncode}): {tail}")
        partial.rename(tarball)
        _progress(f"Debian base made in {time.monotonic() - started:.0f} s")
    _progress(f"importing the base into buildah as {name}")
    container = buildah("from", "scratch").strip()
    try:
        buildah("add", container, str(tarball), "/")
        buildah(
            "config",
            "--env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env",
            "LANG=C.UTF-8",
            "--cmd",
            '["python3"]',
            container,
        )
        buildah("commit", "--quiet", container, name)
    finally:
        subprocess.run(buildah_argv("rm", container), capture_output=True, timeout=120, check=False)
    return name


def context_files(root: Path = REPO_ROOT) -> list[Path]:
    """The files the build context holds (.dockerignore's allowlist, no bytecode), sorted."""
    files: list[Path] = []
    for entry in CONTEXT_PATHS:
        path = root / entry
        if path.is_file():
            files.append(path)
            continue
        files += [
            p
            for p in path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
        ]
    return sorted(files)


def image_key(base: str, root: Path = REPO_ROOT) -> str:
    """Hash of everything the image is made of: base, Dockerfile, .dockerignore, context files."""
    digest = hashlib.sha256(base.encode())
    for path in [root / "Dockerfile", root / ".dockerignore", *context_files(root)]:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def pip_settings(listed: str, env: Mapping[str, str]) -> str:
    """A pip config file with the index and proxy settings of `pip config list` output and of the
    PIP_* variables in `env` (which win, as in pip); paths and other keys are left out."""
    settings: dict[str, str] = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        name = key.rpartition(".")[2]
        if name in _FORWARDED_PIP_KEYS:
            settings[name] = value.strip().strip("'\"")
    for name in _FORWARDED_PIP_KEYS:
        from_env = env.get("PIP_" + name.upper().replace("-", "_"))
        if from_env:
            settings[name] = from_env
    return "[global]\n" + "".join(f"{name} = {value}\n" for name, value in sorted(settings.items()))


def machine_pip_settings() -> str:
    """pip_settings of this machine: what `make venv` reaches the index with."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return pip_settings(listed, os.environ)


def build_image(root: Path = REPO_ROOT) -> BuiltImage:
    """The product image built from `root`'s Dockerfile on the Debian base (cached by input hash)."""
    with _build_lock():
        base = base_image()
        key = image_key(base, root)
        name = f"{IMAGE_NAME}:{key}"
        if image_exists(name):
            return BuiltImage(name, key, base)
        _progress(
            f"building {name} with buildah (minutes when nothing is cached), log in {CACHE / 'build.log'}"
        )
        started = time.monotonic()
        bud(root, name, base)
        _progress(f"built {name} in {time.monotonic() - started:.0f} s")
        _drop_older_images(keep=name)
        return BuiltImage(name, key, base)


def bud(context: Path, name: str, base: str, *, log_path: Path = CACHE / "build.log") -> None:
    """`buildah bud` of `context`'s Dockerfile as `name`, `PYTHON_IMAGE=base`, with the `pip-conf` and
    `pip-ca` build secrets (each ending in SECRET_MARKER); ImageBuildError with the log's tail."""
    with tempfile.TemporaryDirectory(prefix="kar-image-") as secrets_dir:
        pip_conf = Path(secrets_dir) / "pip.conf"
        pip_conf.write_bytes(machine_pip_settings().encode() + SECRET_MARKER)
        pip_ca = Path(secrets_dir) / "pip-ca.crt"
        if SYSTEM_CA_BUNDLE.exists():
            pip_ca.write_bytes(SYSTEM_CA_BUNDLE.read_bytes() + b"\n" + SECRET_MARKER)
        for secret in (pip_conf, pip_ca):
            with contextlib.suppress(FileNotFoundError):
                secret.chmod(0o600)
        argv = buildah_argv(
            "bud",
            "--isolation",
            "chroot",
            "--pull-never",
            # A layer cache per step is cheap on overlay; vfs would copy the whole root file system
            # for each of them (about 14 GB for this Dockerfile), so there only the final images stay.
            *(["--layers"] if storage_driver() == "overlay" else []),
            "--build-arg",
            f"PYTHON_IMAGE={base}",
            "--secret",
            f"id=pip-conf,src={pip_conf}",
            *(["--secret", f"id=pip-ca,src={pip_ca}"] if pip_ca.exists() else []),
            "--tag",
            name,
            str(context),
        )
        with log_path.open("w") as log:
            result = subprocess.run(
                ["nice", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=3600,
                check=False,
            )
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise ImageBuildError(f"buildah bud failed ({result.returncode}):\n{tail}")


def leaked_secrets(root: Path) -> list[Path]:
    """The files under an image's root file system that hold a build secret (its SECRET_MARKER)."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and SECRET_MARKER in path.read_bytes()
    ]


def _drop_older_images(keep: str, newest: int = 4) -> None:
    # Older builds of the product image beyond the newest few (worktrees with other sources each have
    # theirs); their layers stay as the build cache of the next one.
    images = json.loads(buildah("images", "--json") or "[]")
    tagged = [
        (image.get("created", 0), name)
        for image in images
        for name in image.get("names") or []
        if name.startswith(IMAGE_NAME + ":") and name != keep
    ]
    for _created, name in sorted(tagged, reverse=True)[newest - 1 :]:
        subprocess.run(buildah_argv("rmi", name), capture_output=True, timeout=120, check=False)


@contextlib.contextmanager
def registry_auth(registry: LocalRegistry) -> Iterator[list[str]]:
    """buildah's flags to reach `registry`: TLS trust (the test CA) or plain HTTP, credentials in an
    auth file of mode 0600 (never on a command line)."""
    with tempfile.TemporaryDirectory(prefix="kar-push-") as workdir:
        flags: list[str] = []
        if registry.ca_file is not None:
            cert_dir = Path(workdir) / "certs"
            cert_dir.mkdir()
            shutil.copy(registry.ca_file, cert_dir / "ca.crt")
            flags += ["--cert-dir", str(cert_dir), "--tls-verify=true"]
        else:
            flags += ["--tls-verify=false"]
        if registry.username is not None:
            auth_file = Path(workdir) / "auth.json"
            token = f"{registry.username}:{registry.password}".encode()
            auth_file.write_text(
                json.dumps({"auths": {registry.host: {"auth": base64.b64encode(token).decode()}}})
            )
            auth_file.chmod(0o600)
            flags += ["--authfile", str(auth_file)]
        yield flags


def push_image(image: BuiltImage, registry: LocalRegistry, repository: str, tag: str) -> str:
    """Push `image` to `registry` as `repository:tag`; returns the pushed manifest's digest."""
    with registry_auth(registry) as flags, tempfile.TemporaryDirectory(prefix="kar-push-") as workdir:
        digest_file = Path(workdir) / "digest"
        buildah(
            "push",
            *flags,
            "--digestfile",
            str(digest_file),
            image.name,
            f"docker://{registry.host}/{repository}:{tag}",
        )
        return digest_file.read_text().strip()


def product_image(
    registry: LocalRegistry, repository: str = "kube-autorollout", tag: str | None = None
) -> str:
    """Build (or find cached) the product image and push it to `registry`; returns
    "<host>/<repository>:<tag>" (the tag defaults to the image's input key)."""
    image = build_image()
    tag = tag or image.key
    push_image(image, registry, repository, tag)
    return f"{registry.host}/{repository}:{tag}"


if __name__ == "__main__":
    # `make image`: build (or find cached) the image and print its name in buildah's storage.
    print(build_image().name)

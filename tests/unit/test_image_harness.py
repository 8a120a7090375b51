"""The image harness's pure parts: the build's input key, the pip settings it forwards, the runc config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.harness.image import CONTEXT_PATHS, REPO_ROOT, image_key, pip_settings
from tests.harness.runc import runc_config

pytestmark = pytest.mark.unit

BASE = "localhost/kube-autorollout-base:0123"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A small build context shaped like the repository's."""
    for name in ("Dockerfile", ".dockerignore", *CONTEXT_PATHS):
        path = tmp_path / name
        if (REPO_ROOT / name).is_dir():
            (path / "pkg").mkdir(parents=True)
            (path / "pkg" / "module.py").write_text(f"# {name}\n")
        else:
            path.write_text(f"{name}\n")
    return tmp_path


def test_image_key_follows_every_input_and_nothing_else(context: Path) -> None:
    key = image_key(BASE, context)
    assert image_key(BASE, context) == key
    assert image_key(BASE + "5", context) != key
    (context / "notes.txt").write_text("not in the build context")
    (context / "autorollout" / "pkg" / "__pycache__").mkdir()
    (context / "autorollout" / "pkg" / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"\0")
    assert image_key(BASE, context) == key
    for changed in ("Dockerfile", ".dockerignore", "README.md", "certs/pkg/module.py"):
        original = (context / changed).read_text()
        (context / changed).write_text(original + "changed\n")
        assert image_key(BASE, context) != key, changed
        (context / changed).write_text(original)
    shutil.copy(context / "webhook" / "pkg" / "module.py", context / "webhook" / "pkg" / "new.py")
    assert image_key(BASE, context) != key


def test_pip_settings_forward_the_index_and_proxy_but_no_path() -> None:
    listed = (
        "global.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        "global.index-url='https://mirror.example/simple'\n"
        ":env:.find-links='/opt/wheels'\n"
        ":env:.default-timeout='180'\n"
    )
    env = {"PIP_PROXY": "http://proxy.example:3128", "PIP_INDEX_URL": "https://other.example/simple"}
    assert pip_settings(listed, env) == (
        "[global]\n"
        "default-timeout = 180\n"
        "index-url = https://other.example/simple\n"
        "proxy = http://proxy.example:3128\n"
    )
    assert pip_settings("", {}) == "[global]\n"


def test_runc_config_runs_as_the_image_says_on_a_read_only_root(tmp_path: Path) -> None:
    image_config = {"User": "65532:65532", "Env": ["PATH=/opt/venv/bin:/usr/bin"], "WorkingDir": "/tmp"}
    config = runc_config(tmp_path, image_config, ["kube-autorollout", "--version"])
    assert config["root"] == {"path": str(tmp_path), "readonly": True}
    assert config["process"]["user"] == {"uid": 65532, "gid": 65532}
    assert config["process"]["args"] == ["kube-autorollout", "--version"]
    assert config["process"]["cwd"] == "/tmp"
    assert config["process"]["capabilities"]["bounding"] == []
    assert {m["destination"]: m["type"] for m in config["mounts"]}["/tmp"] == "tmpfs"
    assert {"type": "network"} in config["linux"]["namespaces"], "no network in the container"
    assert runc_config(tmp_path, {}, ["true"])["process"]["user"] == {"uid": 0, "gid": 0}

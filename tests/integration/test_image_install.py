"""The Dockerfile's builder stage, replayed in a clean virtual environment, yields a working program.

No Docker engine runs here: the stage's COPY, ENV, WORKDIR and RUN steps run on this machine with
/opt/venv and /src mapped into a temporary directory (apt-get left out: it needs root and only brings
compilers for platforms without wheels). The pip cache is used, so a warm run takes about a minute.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.dockerfile import StageReplay, parse_dockerfile, stage_named

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
# Compressed, the 80 MB image budget holds the base image (~45 MB) and the environment.
MAX_VENV_MIB = 150


@pytest.mark.timeout(600)
def test_builder_steps_produce_a_working_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    venv = tmp_path / "opt-venv"
    builder = stage_named(parse_dockerfile((REPO_ROOT / "Dockerfile").read_text()), "builder")
    replay = StageReplay(
        context=REPO_ROOT,
        mapping={"/opt/venv": venv, "/src": tmp_path / "src"},
        # A clean environment: the base interpreter first on PATH (as in the image), no dev venv.
        env={
            "PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(Path.home()),
            "LANG": "C.UTF-8",
        },
        skip_run=lambda command: "apt-get" in command,
    )
    started = time.monotonic()
    try:
        replay.run(builder, cwd=tmp_path)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"RUN {exc.cmd[-1]} failed:\n{exc.stdout}\n{exc.stderr}")
    install_seconds = time.monotonic() - started

    marker = tmp_path / "marker"
    marker.touch()
    result = subprocess.run(
        [str(venv / "bin" / "kube-autorollout"), "--help"],
        capture_output=True,
        text=True,
        env=replay.env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: kube-autorollout" in result.stdout
    imports = "import uvloop, httptools, orjson, pydantic_core, cryptography, autorollout.config, certs.mint"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", imports],
        capture_output=True,
        text=True,
        env=replay.env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Bytecode was compiled at install time, so nothing is written at run time (read-only root).
    written = [p for p in venv.rglob("*") if p.is_file() and p.stat().st_mtime > marker.stat().st_mtime]
    assert written == []
    assert not (venv / "bin" / "pip").exists(), "pip is removed before the venv reaches the final stage"

    kib = int(
        subprocess.run(["du", "-sk", str(venv)], capture_output=True, text=True, check=True).stdout.split()[0]
    )
    # What the venv weighs as a compressed layer (registries store gzip'd tar layers).
    layer = subprocess.run(
        f"tar -C {venv} -cf - . | gzip -6 | wc -c", shell=True, capture_output=True, text=True, check=True
    )
    layer_mib = int(layer.stdout) / 2**20
    with capsys.disabled():
        print(
            f"\n[image] venv installed size {kib / 1024:.1f} MiB, {layer_mib:.1f} MiB as a gzip layer;"
            f" install steps took {install_seconds:.0f} s"
        )
    assert kib < MAX_VENV_MIB * 1024

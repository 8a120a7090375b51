"""`kube-autorollout webhook` start-up failures: exit codes and one-line reasons."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from autorollout.cli.main import main
from certs.mint import write_bundle
from tests.harness.commands import webhook_flags

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The command configures the root logger; put it back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFIG_FILE", raising=False)


@pytest.mark.usefixtures("no_config")
def test_a_certificate_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhook", "--webhook-port", "0"]) == 2
    assert "give --tls-cert and --tls-key" in capsys.readouterr().err


@pytest.mark.usefixtures("no_config")
def test_unreadable_certificate_is_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "webhook",
            *webhook_flags(tmp_path / "missing.crt", tmp_path / "missing.key", 0),
            "--kubeconfig",
            str(tmp_path / "no-kubeconfig"),
        ]
    )
    assert code == 2
    assert "missing.crt: no such file" in capsys.readouterr().err


@pytest.mark.usefixtures("no_config")
def test_taken_port_is_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = write_bundle(tmp_path, ["localhost"], ["127.0.0.1"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(
            [
                "webhook",
                *webhook_flags(bundle.tls_cert, bundle.tls_key, port),
                "--kubeconfig",
                str(tmp_path / "no-kubeconfig"),
            ]
        )
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_bad_config_file_is_reported_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("webhook:\n  imagePullPolicy: sometimes\n  lookupBudgetSeconds: -1\n")
    assert main(["webhook", "--config", str(config)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("kube-autorollout: webhook.imagePullPolicy") for line in err)
    assert any(line.startswith("kube-autorollout: webhook.lookupBudgetSeconds") for line in err)

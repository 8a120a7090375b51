"""The installed `kube-autorollout` program against hostile files: config paths that are devices,
FIFOs, directories, huge files or ConfigMap-style symlinks; unknown keys with and without strict
mode; values from the environment in bad configs; symlinks planted in `certs generate --out`; bad
DNS names. Each is a real process; its exit code, stderr, time and peak memory are checked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.reconciler_helpers import log_messages

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.prefix) / "bin" / "kube-autorollout"
CANARY = "Canary-9d1e"


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mib: float

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> Finished:
    """Run the program, with its peak RSS from wait4 (a process that reads /dev/zero grows without end)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "KUBECONFIG", "RUST_LOG")}
    environ.update(env or {})
    out, err = (os.pipe(), os.pipe())
    started = time.monotonic()
    process = subprocess.Popen([str(SCRIPT), *args], stdout=out[1], stderr=err[1], env=environ)
    os.close(out[1])
    os.close(err[1])
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise AssertionError(f"{args} still running after {timeout} s")
        time.sleep(0.02)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    with os.fdopen(out[0]) as stdout, os.fdopen(err[0], errors="replace") as stderr:
        return Finished(process.returncode, stdout.read(), stderr.read(), seconds, usage.ru_maxrss / 1024)


def reconcile_once(config: Path | str, *extra: str, env: Mapping[str, str] | None = None) -> Finished:
    # No API server is needed: config problems end the program before it connects, and a good
    # config gets as far as the kubeconfig (exit 1), after the start-up lines.
    return run(
        "reconcile", "--once", "--config", str(config), "--kubeconfig", "/nonexistent", *extra, env=env
    )


# --- the config file ----------------------------------------------------------------------------


def test_config_paths_that_are_not_regular_files_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # nobody ever writes: opening it for reading would block
    to_zero = tmp_path / "zero.yaml"
    to_zero.symlink_to("/dev/zero")
    sparse = tmp_path / "sparse.yaml"
    with sparse.open("wb") as file:
        file.truncate(1 << 30)
    over = tmp_path / "over.yaml"
    over.write_bytes(b"#" * (1024 * 1024) + b"\n")
    cases = {
        "/dev/zero": "/dev/zero: is a character device, not a regular file; give a config file",
        str(to_zero): f"{to_zero}: is a character device, not a regular file; give a config file",
        str(fifo): f"{fifo}: is a FIFO, not a regular file; give a config file",
        str(tmp_path): f"{tmp_path}: is a directory, not a regular file; give a config file",
        str(sparse): f"{sparse}: config file is larger than the limit of 1,048,576 bytes (1 MiB)",
        str(over): f"{over}: config file is larger than the limit of 1,048,576 bytes (1 MiB)",
    }
    for path, message in cases.items():
        for finished in (reconcile_once(path), run("digest", "--config", path, "example.com/a:b")):
            assert finished.code == 2, (path, finished)
            assert finished.lines == [f"kube-autorollout: {message}"], (path, finished.stderr)
            assert finished.seconds < 20, (path, finished.seconds)
            assert finished.max_rss_mib < 150, (path, finished.max_rss_mib)
            print(f"{path}: exit 2 in {finished.seconds:.2f} s, peak RSS {finished.max_rss_mib:.0f} MiB")


def test_a_configmap_mount_of_symlinks_is_followed(tmp_path: Path) -> None:
    version = tmp_path / "..2026_12_01_08_00_00.123"
    version.mkdir()
    (version / "config.yaml").write_text("webserver:\n  port: 18181\nlogLevel: debug\n")
    (tmp_path / "..data").symlink_to(version.name)
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    finished = reconcile_once(tmp_path / "config.yaml")
    assert finished.code == 1  # got as far as the kubeconfig
    assert "kube-autorollout: reconcile failed: cannot load kubeconfig /nonexistent" in finished.stderr
    (log_path := tmp_path / "log").write_text(finished.stderr)
    [configuration] = [m for m in log_messages(log_path) if m["msg"] == "configuration"]
    assert configuration["config"]["webserver"] == {"port": 18181}
    assert configuration["config_file"] == str(tmp_path / "config.yaml")


UNKNOWN = """\
webserver:
  prot: 8080
registries:
  - hostnamePattern: a.io
    secret: {type: Opaque, tokn: x, token: "${TOKEN}"}
newUpstreamKey: 1
"""
UNKNOWN_LINES = [
    "webserver.prot: unknown key; did you mean port? (line 2)",
    "registries[0].secret.tokn: unknown key; did you mean token? (line 5)",
    "newUpstreamKey: unknown key; expected one of: cronSchedule, digestCacheTtlSeconds, events, "
    "featureFlags, leaderElection, logLevel, lookupTimeoutSeconds, notifications, "
    "reconciler, registries, rolloutPolicy, tls, webhook, "
    "webserver (line 6)",
]


def test_unknown_keys_are_warnings_and_fatal_in_strict_mode(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(UNKNOWN)
    env = {"TOKEN": CANARY}
    lenient = reconcile_once(config, env=env)
    assert lenient.code == 1  # past the config, stopped by the kubeconfig
    (log_path := tmp_path / "log").write_text(lenient.stderr)
    warnings = [m for m in log_messages(log_path) if m["level"] == "warning"]
    assert [w["msg"] for w in warnings] == UNKNOWN_LINES
    assert {w["config_file"] for w in warnings} == {str(config)}

    digest = run("digest", "--config", str(config), "not a reference", env=env)
    assert digest.code == 2
    assert digest.lines[:3] == UNKNOWN_LINES  # before the command's own error

    for finished in (
        reconcile_once(config, "--strict-config", env=env),
        reconcile_once(config, env={**env, "KUBE_AUTOROLLOUT_STRICT_CONFIG": "true"}),
        run("digest", "--config", str(config), "--strict-config", "example.com/a:b", env=env),
    ):
        assert finished.code == 2, finished
        assert finished.lines == [f"kube-autorollout: {line}" for line in UNKNOWN_LINES]
    for finished in (lenient, digest):
        assert CANARY not in finished.stderr + finished.stdout


def test_bad_values_from_the_environment_are_never_echoed(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "cronSchedule: '${CRON}'\n"
        "logLevel: ${LEVEL}\n"
        "registries:\n"
        "  - hostnamePattern: a.io\n"
        "    secret: {type: '${KIND}', token: '${TOKEN}'}\n"
        "reconciler:\n"
        "  namespaces: ['${NS}']\n"
        "tls:\n"
        "  caCertificatePaths: ['${CA}']\n"
    )
    env = {
        "CRON": f"{CANARY}-cron",
        "LEVEL": f"{CANARY}-level",
        "KIND": f"{CANARY}-kind",
        "TOKEN": f"{CANARY}-token",
        "NS": f"{CANARY}-ns",
        "CA": f"/{CANARY}/ca.crt",
    }
    finished = reconcile_once(config, env=env)
    assert finished.code == 2
    assert [line.split(":")[1].strip() for line in finished.lines] == [
        "cronSchedule",
        "logLevel",
        "registries[0].secret.type",
        "reconciler.namespaces[0]",
    ]
    assert "unknown secret type; expected ImagePullSecret, Opaque or None" in finished.stderr
    assert CANARY not in finished.stderr + finished.stdout


# --- certs generate -----------------------------------------------------------------------------


@pytest.mark.parametrize("planted", ["tls.key", "tls.crt", "ca.crt"])
def test_certs_generate_replaces_a_planted_symlink_and_leaves_its_target_alone(
    tmp_path: Path, planted: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "authorized_keys"
    target.write_text("ssh-ed25519 AAAA... user\n")
    target.chmod(0o644)
    (out / planted).symlink_to(target)
    finished = run("certs", "generate", "--out", str(out), "--dns", "webhook.tools.svc")
    assert finished.code == 0, finished.stderr
    assert target.read_text() == "ssh-ed25519 AAAA... user\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not (out / planted).is_symlink()
    key_mode = (out / "tls.key").lstat().st_mode
    assert stat.S_ISREG(key_mode)
    assert stat.S_IMODE(key_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert b"PRIVATE KEY" in (out / "tls.key").read_bytes()


def test_certs_generate_over_existing_files_replaces_them(tmp_path: Path) -> None:
    first = run("certs", "generate", "--out", str(tmp_path), "--dns", "a.example")
    old_key = (tmp_path / "tls.key").read_bytes()
    (tmp_path / "tls.key").chmod(0o644)
    second = run("certs", "generate", "--out", str(tmp_path), "--dns", "a.example")
    assert (first.code, second.code) == (0, 0)
    assert (tmp_path / "tls.key").read_bytes() != old_key
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "a DNS name is empty"),
        ("a b", "DNS name 'a b' contains whitespace or control characters"),
        ("a\nb", "DNS name 'a\\nb' contains whitespace or control characters"),
        ("*", "DNS name '*': a wildcard is only allowed as the whole first label (*.)"),
        ("x" * 300, "DNS name of 300 characters; at most 253 are allowed"),
        ("a" * 64, f"DNS name '{'a' * 64}' has a label of 64 characters; at most 63"),
        ("☃.net", "DNS name '☃.net' is not a valid internationalised name: Codepoint U+2603"),
        ("10.0.0.1", "'10.0.0.1' is an IP address: give it with --ip"),
    ],
)
def test_certs_generate_refuses_bad_names_with_one_line(tmp_path: Path, name: str, message: str) -> None:
    finished = run("certs", "generate", "--out", str(tmp_path / "out"), "--dns", "ok.example", name)
    assert finished.code == 2
    [line] = finished.lines
    assert line.startswith(f"kube-autorollout certs: {message}"), line
    assert not (tmp_path / "out").exists()


def test_certs_generate_encodes_an_international_name(tmp_path: Path) -> None:
    finished = run("certs", "generate", "--out", str(tmp_path), "--dns", "bücher.example", "*.tools.svc")
    assert finished.code == 0, finished.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example", "*.tools.svc"]

"""The installed `kube-autorollout digest` as a process against the hostile registry
(tests/harness/hostile.py): it ends within `lookupTimeoutSeconds` whatever the peer does, exits 1 with
one line (2 for a bad reference), never a traceback, and never prints a registry's control characters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.harness.hostile import MANIFEST_DIGEST, HostileRegistry, digest_of

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.prefix) / "bin" / "kube-autorollout"
DEADLINE = 3
# Measured from the process's first connection to its exit (Python start-up, 10 s or more when five
# start at once on a loaded 2-core machine, is left out). Unloaded that is 3.1 s; at load 9 the
# interpreter's exit alone took up to 2.8 s more. The bound stays below the 10 s read timeout, so
# only the deadline can have ended the lookup (the message says so too).
EARLIEST, LATEST = DEADLINE - 1.0, 10.0


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # from start to exit
    ended: float  # time.monotonic() at exit


def run_all(config: Path, *argvs: list[str]) -> list[Run]:
    """`kube-autorollout digest ARGV --config CONFIG` for each ARGV at once, each one timed."""
    env = {k: v for k, v in os.environ.items() if k != "CONFIG_FILE"}
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [str(SCRIPT), "digest", *argv, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for argv in argvs
    ]
    ended: dict[int, float] = {}
    while len(ended) < len(processes) and time.monotonic() - started < 60:
        for i, process in enumerate(processes):
            if i not in ended and process.poll() is not None:
                ended[i] = time.monotonic() - started
        time.sleep(0.02)
    runs = []
    for i, process in enumerate(processes):
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate()
        runs.append(
            Run(
                process.returncode,
                stdout.decode(),
                stderr.decode(),
                ended.get(i, float("inf")),
                started + ended.get(i, float("inf")),
            )
        )
    return runs


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"lookupTimeoutSeconds": DEADLINE}))
    return path


def one_clean_line(run: Run) -> str:
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("kube-autorollout: ")
    return lines[0]


def test_digest_ends_at_its_deadline_against_every_trickle(
    hostile: list[HostileRegistry], config: Path
) -> None:
    # A byte a second: the 10 s read timeout never fires, so only the deadline can end these.
    behaviours = ["trickle-status", "trickle-headers", "trickle-body", "trickle-token", "stall-body"]
    servers = [HostileRegistry(b, interval=1.0) for b in behaviours]
    hostile.extend(servers)
    runs = run_all(config, *([f"{s.host}/team/app:v1"] for s in servers))
    for behaviour, server, run in zip(behaviours, servers, runs, strict=True):
        assert server.first_contact is not None
        lookup = run.ended - server.first_contact
        print(
            f"{behaviour}: exit {run.returncode} {lookup:.2f} s after its first connection "
            f"({run.seconds:.2f} s with start-up), {server.trickled} bytes trickled"
        )
        line = one_clean_line(run)
        assert run.returncode == 1
        assert f"LookupTimeoutError: {server.host}/team/app:v1: no answer within 3 s" in line
        assert EARLIEST <= lookup < LATEST
        assert run.stdout == ""


def test_broken_answers_exit_1_with_one_line(hostile: list[HostileRegistry], config: Path) -> None:
    bad_entry = {"digest": "sha256:../../etc/passwd", "platform": {"os": "linux", "architecture": "amd64"}}
    cases = {
        "short-body": (HostileRegistry("short-body"), "UnreachableError", "broke off"),
        "reset-body": (HostileRegistry("reset-body"), "UnreachableError", "ReadError"),
        "location data:": (
            HostileRegistry("location", location="data:application/json,{}"),
            "BadResponseError",
            "not an http(s) URL",
        ),
        "location port 99999": (
            HostileRegistry("location", location="http://127.0.0.1:99999/v2/"),
            "BadResponseError",
            "port 99999 is not in 1-65535",
        ),
        "index entry ../../etc/passwd": (
            HostileRegistry("index", index_body=json.dumps({"manifests": [bad_entry]}).encode()),
            "BadResponseError",
            "index entry with an invalid digest",
        ),
    }
    hostile.extend(server for server, _, _ in cases.values())
    runs = run_all(config, *([s.host + "/team/app:v1", "--platforms"] for s, _, _ in cases.values()))
    for (name, (_, kind, words)), run in zip(cases.items(), runs, strict=True):
        print(f"{name}: exit {run.returncode} after {run.seconds:.2f} s")
        line = one_clean_line(run)
        assert run.returncode == 1, name
        assert f"kube-autorollout: {kind}: " in line, name
        assert words in line, name
        assert "passwd" not in run.stdout + run.stderr
        assert run.stdout == ""


def test_a_registry_port_out_of_range_is_bad_usage(config: Path) -> None:
    ports = ["99999", "65536", "0"]
    runs = run_all(config, *([f"127.0.0.1:{port}/team/app:v1"] for port in ports))
    for port, run in zip(ports, runs, strict=True):
        line = one_clean_line(run)
        assert run.returncode == 2
        assert line == (
            f"kube-autorollout: invalid image reference '127.0.0.1:{port}/team/app:v1': "
            f"registry port {port} is not in 1-65535"
        )


def test_platform_fields_are_printed_escaped(hostile: list[HostileRegistry], config: Path) -> None:
    amd64, arm = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    body = json.dumps(
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"digest": amd64, "platform": {"os": "linux", "architecture": "amd64"}},
                {
                    "digest": arm,
                    "platform": {
                        "os": "linux\n" + "c" * 20 + "  windows",
                        "architecture": "\x1b[2J\x1b]0;owned\x07arm",
                        "variant": "\u202ev7\x9b",
                    },
                },
            ],
        }
    ).encode()
    server = HostileRegistry("index", index_body=body)
    hostile.append(server)
    (run,) = run_all(config, [f"{server.host}/team/app:v1", "--platforms"])
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [
        digest_of(body),
        f"{amd64}  linux/amd64",
        f"{arm}  linux\\x0a{'c' * 20}  windows/\\x1b[2J\\x1b]0;owned\\x07arm/\\u202ev7\\x9b",
    ]


def test_odd_expires_in_still_prints_the_digest(hostile: list[HostileRegistry], config: Path) -> None:
    values = ["9" * 400, "1e400", "NaN", "-5"]
    servers = [HostileRegistry("token", expires_in=value) for value in values]
    hostile.extend(servers)
    runs = run_all(config, *([f"{s.host}/team/app:v1"] for s in servers))
    for value, run in zip(values, runs, strict=True):
        assert (run.returncode, run.stdout, run.stderr) == (0, MANIFEST_DIGEST + "\n", ""), value[:10]

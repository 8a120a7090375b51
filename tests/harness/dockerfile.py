"""Read a Dockerfile without Docker: instructions by stage, and a replay of a stage's build steps.

The replay runs a stage's COPY, ENV, WORKDIR and RUN steps on this machine, with the container paths
it is told about mapped into a local directory. It is how the tests check that the image's install
steps work while no Docker engine is available.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by stage (a new stage at each FROM); comments and continuations removed."""
    stages: list[list[Instruction]] = []
    logical: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # blank lines and comments, also inside a continued instruction
        if line.endswith("\\"):
            logical.append(line[:-1].strip())
            continue
        logical.append(line)
        keyword, _, arguments = " ".join(logical).partition(" ")
        logical = []
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def stage_named(stages: list[list[Instruction]], name: str) -> list[Instruction]:
    """The stage declared `FROM ... AS <name>`."""
    for stage in stages:
        if stage[0].arguments.lower().endswith(f" as {name.lower()}"):
            return stage
    raise LookupError(f"no stage named {name}")


def run_command(arguments: str) -> str:
    """The shell command of a RUN instruction, without flags such as `--mount=type=cache,...`."""
    words = arguments.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words)


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$VAR` and `${VAR}` replaced from `env` (unknown variables become empty, as in Docker)."""
    return _VARIABLE.sub(lambda m: env.get(m.group("braced") or m.group("plain"), ""), text)


@dataclass
class StageReplay:
    """Replays a stage's steps: container paths in `mapping` become local paths."""

    context: Path
    mapping: Mapping[str, Path]
    env: dict[str, str]
    skip_run: Callable[[str], bool] = lambda _command: False

    def localize(self, text: str) -> str:
        for container_path, local in self.mapping.items():
            text = text.replace(container_path, str(local))
        return text

    def run(self, stage: list[Instruction], cwd: Path) -> None:
        """Execute the stage; raises subprocess.CalledProcessError (with output) on a failed RUN."""
        for instruction in stage:
            if instruction.keyword == "ENV":
                for assignment in shlex.split(instruction.arguments):
                    key, _, value = assignment.partition("=")
                    self.env[key] = expand(self.localize(value), self.env)
            elif instruction.keyword == "WORKDIR":
                cwd = Path(self.localize(instruction.arguments))
                cwd.mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY":
                *sources, dest = instruction.arguments.split()
                self._copy(sources, cwd / self.localize(dest))
            elif instruction.keyword == "RUN":
                command = self.localize(run_command(instruction.arguments))
                if self.skip_run(command):
                    continue
                subprocess.run(
                    ["/bin/sh", "-c", command],
                    cwd=cwd,
                    env=self.env,
                    capture_output=True,
                    text=True,
                    check=True,
                )

    def _copy(self, sources: list[str], target: Path) -> None:
        for source in sources:
            origin = self.context / source
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.py[co]")
                shutil.copytree(origin, target, ignore=ignore, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)

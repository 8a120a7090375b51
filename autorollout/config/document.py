"""The config file as YAML: parsed safely, `${VAR}` substituted in scalar values, every key's line kept.

Substitution happens on the parsed nodes, so a variable's characters can never change the file's
structure; which key paths took their value from the environment is remembered, so that neither an
error nor the start-up log ever shows such a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

__all__ = ["Loc", "YamlDocument", "format_path", "scrub_values", "with_line"]

Loc = tuple[str | int, ...]

_CONSTRUCTOR_FAILURES = (ValueError, TypeError, OverflowError, IndexError, KeyError, AttributeError)
_VAR_RE = re.compile(r"\$(\$?)\{([^}]+)\}")
# Shorter values would be found inside ordinary words and line numbers; they are kept out of the
# messages by construction (no message quotes a value), this is the second line of defence.
_MIN_SCRUBBED = 4


def format_path(loc: Loc) -> str:
    """("registries", 1, "secret") -> "registries[1].secret"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def with_line(path: str, message: str, line: int | None) -> str:
    return f"{path}: {message}" + (f" (line {line})" if line is not None else "")


def scrub_values(message: str, values: Iterable[str]) -> str:
    """`message` with every occurrence of one of `values` (of 4 characters or more) replaced by '...'."""
    for value in sorted({v for v in values if len(v) >= _MIN_SCRUBBED}, key=len, reverse=True):
        message = message.replace(value, "...")
    return message


class YamlDocument:
    """Parsed YAML with `${VAR}` substituted in scalar values, and the line of every key path."""

    def __init__(self) -> None:
        self.data: Any = None
        self.problems: list[str] = []
        self.lines: dict[Loc, int] = {}
        self.missing_variable_paths: list[str] = []
        # key path -> the scalar as written (with its `${VAR}`), for every substituted value
        self.from_environment: dict[Loc, str] = {}
        self.environment_values: list[str] = []

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str]) -> YamlDocument:
        doc = cls()
        try:
            loader = yaml.SafeLoader(text)
        except yaml.reader.ReaderError as exc:
            doc.problems.append(_reader_problem(exc))
            return doc
        try:
            node = loader.get_single_node()
            if node is not None:
                doc._walk(loader, node, (), environ, set())
                doc.data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            doc.problems.append(_yaml_problem(exc))
        except yaml.reader.ReaderError as exc:
            doc.problems.append(_reader_problem(exc))
        except yaml.YAMLError as exc:
            doc.problems.append(f"(yaml): invalid YAML: {_scrub(str(exc))}")
        except RecursionError:
            doc.problems.append("(yaml): nested too deeply")
        except _CONSTRUCTOR_FAILURES as exc:  # PyYAML's constructors on odd input, e.g. date 2024-13-01
            doc.problems.append(f"(yaml): a value cannot be read: {_scrub(str(exc))}")
        finally:
            loader.dispose()
        doc.problems = [scrub_values(p, doc.environment_values) for p in doc.problems]
        return doc

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest written key on `loc` (a missing key points at its parent)."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def _walk(
        self, loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, environ: Mapping[str, str], seen: set[int]
    ) -> None:
        if id(node) in seen:  # anchors and aliases share nodes
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.tag)
                child = (*loc, key)
                line = key_node.start_mark.line + 1
                if key in keys:
                    self.problems.append(f"{format_path(child)}: duplicate key (line {line})")
                keys.add(key)
                self.lines.setdefault(child, line)
                self._walk(loader, value_node, child, environ, seen)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*loc, index)
                self.lines.setdefault(child, item.start_mark.line + 1)
                self._walk(loader, item, child, environ, seen)
        elif isinstance(node, yaml.ScalarNode) and "${" in node.value:
            self._substitute(loader, node, loc, environ)

    def _substitute(
        self, loader: yaml.SafeLoader, node: yaml.ScalarNode, loc: Loc, environ: Mapping[str, str]
    ) -> None:
        line = node.start_mark.line + 1
        substituted = False

        def replace(match: re.Match[str]) -> str:
            nonlocal substituted
            escaped, name = match.group(1), match.group(2)
            if escaped:
                return "${" + name + "}"
            substituted = True
            value = environ.get(name)
            if value is None:
                path = format_path(loc)
                self.problems.append(f"{path}: environment variable {name} is not set (line {line})")
                self.missing_variable_paths.append(path)
                return ""
            self.environment_values.append(value)
            return value

        value = _VAR_RE.sub(replace, node.value)
        if substituted:
            self.from_environment[loc] = node.value
        if value != node.value:
            node.value = value
            if node.style is None:  # a plain scalar gets its type from its new text, as if written
                node.tag = loader.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = ": ".join(part for part in (exc.context, exc.problem) if part)
    return f"(yaml): {where}invalid YAML: {_scrub(what) or 'syntax error'}"


def _reader_problem(exc: yaml.reader.ReaderError) -> str:
    return f"(yaml): character {exc.position + 1}: invalid YAML: unacceptable character #x{exc.character:04x}"


def _scrub(message: str) -> str:
    """Drop quoted fragments of the file's text (alias names, tags, values): they could be a token."""
    return re.sub(r"'(?!<)[^']{4,}'", "'...'", message.splitlines()[0] if message else message)

"""Log level choice: config `logLevel` > RUST_LOG (upstream's chart) > info; one logger naming scheme."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autorollout.logs import choose_level, rust_log_level

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("info", "info"),
        ("DEBUG", "debug"),
        ("kube_autorollout=debug", "debug"),
        ("kube_autorollout=debug,warn", "debug"),
        ("warn,kube_autorollout=trace", "trace"),
        ("warn,kube=info", "info"),  # env_logger matches targets by prefix
        ("kube_autorollout", "trace"),  # a target alone means every level
        ("kube_autorollout=", "trace"),
        ("kube-autorollout=error", "error"),
        ("kube_autorollout=off", "error"),  # the least we log
        ("hyper=debug,kube_runtime=trace", None),
        ("kube_autorollout::controller=debug", None),  # a module of the crate, not the crate
        ("error,kube_autorollout=info/some regex", "info"),
        ("info,info=debug", "info"),
        (" kube_autorollout = Debug , ", "debug"),
        ("", None),
        ("kube_autorollout=warn,kube_autorollout=debug", "debug"),  # the last of equals wins
    ],
)
def test_rust_log_gives_the_level_of_upstreams_crate(value: str, level: str | None) -> None:
    assert rust_log_level(value) == (level, [])


def test_unreadable_rust_log_directives_are_named_by_position_and_ignored() -> None:
    level, problems = rust_log_level("kube_autorollout=loud,debug,=info,a=b=c")
    assert level == "debug"
    assert problems == [
        f"RUST_LOG: directive {i} of 4 not understood, ignored (expected LEVEL or TARGET=LEVEL, "
        "LEVEL one of error, warn, info, debug, trace, off)"
        for i in (1, 3, 4)
    ]
    assert not any("loud" in p for p in problems)


def test_precedence_config_then_rust_log_then_default() -> None:
    assert choose_level("error", {"RUST_LOG": "debug"}).level == "error"
    assert choose_level("error", {"RUST_LOG": "debug"}).source == "logLevel"
    chosen = choose_level(None, {"RUST_LOG": "kube_autorollout=debug"})
    assert (chosen.level, chosen.source, chosen.problems) == ("debug", "RUST_LOG", ())
    assert choose_level(None, {}).level == "info"
    unreadable = choose_level(None, {"RUST_LOG": "kube_autorollout=loud"})
    assert (unreadable.level, unreadable.source, len(unreadable.problems)) == ("info", "default", 1)
    other_crates = choose_level(None, {"RUST_LOG": "hyper=trace"})
    assert (other_crates.level, other_crates.source) == ("info", "default")


def test_every_logger_of_the_product_is_named_kube_autorollout_dot_area() -> None:
    root = Path(__file__).resolve().parents[2]
    names: dict[str, str] = {}
    for package in ("autorollout", "webhook", "reconciler", "certs"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "getLogger"
                    and node.args
                    and path.name != "logs.py"  # configures the root and third-party loggers
                ):
                    arg = node.args[0]
                    names[f"{path.relative_to(root)}:{node.lineno}"] = (
                        arg.value if isinstance(arg, ast.Constant) else ast.unparse(arg)
                    )
    assert len(names) >= 10
    wrong = {where: name for where, name in names.items() if not str(name).startswith("kube_autorollout.")}
    assert wrong == {}

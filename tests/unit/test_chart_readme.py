"""The chart README's values table is generated from values.yaml and must be up to date."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chart-readme.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


chart_readme = _load_script()


def test_readme_values_table_is_up_to_date() -> None:
    current, expected = chart_readme.expected_readme()
    assert current == expected, "charts/kube-autorollout/README.md is stale: run scripts/chart-readme.py"


def test_every_value_is_documented() -> None:
    text = (chart_readme.CHART_DIR / "values.yaml").read_text()
    docs = chart_readme.parse_docs(text)
    assert chart_readme.undocumented_leaves(docs, yaml.safe_load(text)) == []


def test_parse_docs_follows_nesting_and_continuation_lines() -> None:
    text = """\
# header comment, not documentation
# -- Top level
# that goes on.
top: 1
outer:
  # -- Nested key.
  inner:
    leaf: true
  undocumented: x
list:
  # -- ignored: list items are not keys
  - name: a
after: 2
"""
    docs = chart_readme.parse_docs(text)
    assert [(d.path, d.description) for d in docs] == [
        ("top", "Top level that goes on."),
        ("outer.inner", "Nested key."),
    ]
    assert chart_readme.undocumented_leaves(docs, yaml.safe_load(text)) == [
        "outer.undocumented",
        "list",
        "after",
    ]


def test_table_escapes_pipes_and_shows_json_defaults() -> None:
    docs = [chart_readme.ValueDoc("a.b", "one | two")]
    table = chart_readme.render_table(docs, {"a": {"b": {"k": [1, "x"]}}})
    assert table.splitlines()[-1] == '| a.b | object | `{"k":[1,"x"]}` | one \\| two |'


def test_check_mode_reports_a_stale_readme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "values.yaml").write_text("# -- A value.\nvalue: 1\n")
    (tmp_path / "README.md").write_text(f"# chart\n{chart_readme.BEGIN}\nold\n{chart_readme.END}\n")
    assert chart_readme.main(["--check", "--chart", str(tmp_path)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert chart_readme.main(["--chart", str(tmp_path)]) == 0
    assert chart_readme.main(["--check", "--chart", str(tmp_path)]) == 0
    assert "| value | int | `1` | A value. |" in (tmp_path / "README.md").read_text()

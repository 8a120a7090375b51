"""The chart README is helm-docs' rendering of README.md.gotmpl and values.yaml, and is up to date.

helm-docs is the binary scripts/install-helm-docs.sh built (nothing is built when it is cached).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "kube-autorollout"
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-helm-docs.sh"
TABLE_ONLY = '{{ template "chart.valuesTable" . }}\n'
_ROW = re.compile(r"^\| (?P<key>\S+) \| (?P<type>\S+) \| (?P<default>.*) \| (?P<description>.*) \|$")


@functools.cache
def helm_docs_binary() -> Path:
    result = subprocess.run([str(INSTALL_SCRIPT)], stdout=subprocess.PIPE, text=True, timeout=900, check=True)
    binary = Path(result.stdout.strip().splitlines()[-1]) / "helm-docs"
    assert binary.is_file(), f"{INSTALL_SCRIPT} printed {binary}, which does not exist"
    return binary


def render(chart: Path, work: Path) -> str:
    """The README helm-docs writes for a copy of `chart` (the chart itself is left untouched)."""
    copy = work / chart.name
    shutil.copytree(chart, copy)
    (copy / "README.md").unlink(missing_ok=True)
    subprocess.run(
        [str(helm_docs_binary()), "--chart-search-root", str(copy), "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return (copy / "README.md").read_text()


def values_table(readme: str) -> list[str]:
    """The rows of the values table in a rendered README, header and separator left out."""
    lines = readme.splitlines()
    start = lines.index("| Key | Type | Default | Description |") + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("| ")), len(lines))
    return lines[start:end]


def values_rows(readme: str) -> dict[str, dict[str, str]]:
    """{key: {type, default, description}} of the values table in a rendered README."""
    matches = [_ROW.match(line) for line in values_table(readme)]
    return {match["key"]: match.groupdict() for match in matches if match}


def cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row)) - 2


def small_chart(tmp_path: Path, values: str) -> Path:
    chart = tmp_path / "src" / "small"
    chart.mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: small\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(values)
    (chart / "README.md.gotmpl").write_text(TABLE_ONLY)
    return chart


def test_readme_is_up_to_date(tmp_path: Path) -> None:
    expected = render(CHART_DIR, tmp_path)
    current = (CHART_DIR / "README.md").read_text()
    assert current == expected, "charts/kube-autorollout/README.md is stale: run `make chart-readme`"


def test_every_value_is_documented(tmp_path: Path) -> None:
    rows = values_rows(render(CHART_DIR, tmp_path))
    assert len(rows) > 50
    assert [key for key, row in rows.items() if not row["description"].strip()] == []


def test_comments_follow_nesting_and_continuation_lines(tmp_path: Path) -> None:
    chart = small_chart(
        tmp_path,
        """\
# header comment, not documentation
# -- Top level
# that goes on.
top: 1
outer:
  # -- Nested key.
  inner:
    leaf: true
  undocumented: x
after: {"k": [1, "x"]}
""",
    )
    rows = values_rows(render(chart, tmp_path))
    assert rows["top"]["description"] == "Top level that goes on."
    assert rows["outer.inner"] == {
        "key": "outer.inner",
        "type": "object",
        "default": '`{"leaf":true}`',
        "description": "Nested key.",
    }
    assert "outer.inner.leaf" not in rows  # a documented map is one row, its keys are not listed
    # Undocumented keys are listed with an empty description: what the test above looks for.
    assert rows["outer.undocumented"]["description"] == ""
    assert rows["after.k[1]"] == {
        "key": "after.k[1]",
        "type": "string",
        "default": '`"x"`',
        "description": "",
    }


def test_every_table_row_has_four_cells(tmp_path: Path) -> None:
    # helm-docs copies descriptions verbatim: a `|` in a `# --` comment must be written `\|`.
    table = values_table(render(CHART_DIR, tmp_path))
    assert len(table) > 50
    assert [row for row in table if cells(row) != 4] == []
    chart = small_chart(tmp_path, "# -- one | two\nbad: a\n# -- one \\| two\ngood: b\n")
    assert [cells(row) for row in values_table(render(chart, tmp_path / "small"))] == [5, 4]


def test_a_changed_value_makes_the_readme_stale(tmp_path: Path) -> None:
    chart = small_chart(tmp_path, "# -- A value.\nvalue: 1\n")
    before = render(chart, tmp_path / "a")
    assert values_rows(before)["value"]["default"] == "`1`"
    (chart / "values.yaml").write_text("# -- A value.\nvalue: 2\n")
    assert render(chart, tmp_path / "b") != before

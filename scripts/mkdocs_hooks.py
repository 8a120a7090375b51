"""MkDocs hook: the site is docs/ with the project README as its home page and the chart README as a
page, and the relative links written for reading the files on GitHub work on the site as well.

Two pages of docs/ stand for files elsewhere in the repository and are replaced by them at build time.
A link is resolved against the repository location of the file it is written in: to a page of docs/
or to one of those two files it becomes a link between site pages; to another file of the repository
(a test, a script) it becomes its text, since the site does not carry source files; to a file that does
not exist it is left alone, so `mkdocs build --strict` reports it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

# site page (under docs/) -> the repository file it shows
INCLUDED = {"index.md": "README.md", "chart-readme.md": "charts/kube-autorollout/README.md"}
_SITE_PAGE = {source: page for page, source in INCLUDED.items()}
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s#]*)(?P<anchor>#[^)\s]*)?\)")


def _relink(markdown: str, source: str, repo: Path) -> str:
    directory = posixpath.dirname(source)

    def replace(link: re.Match[str]) -> str:
        target = link["target"]
        if not target or "://" in target or target.startswith("mailto:"):
            return link[0]
        path = posixpath.normpath(posixpath.join(directory, target))
        if path in _SITE_PAGE:
            page = _SITE_PAGE[path]
        elif path.startswith("docs/"):
            page = path.removeprefix("docs/")
        elif (repo / path).exists():
            return link["text"]
        else:
            return link[0]
        return f"[{link['text']}]({page}{link['anchor'] or ''})"

    return _LINK.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    repo = Path(config["config_file_path"]).resolve().parent
    source = INCLUDED.get(page.file.src_uri)
    if source is None:
        return _relink(markdown, "docs/" + page.file.src_uri, repo)
    return _relink((repo / source).read_text(encoding="utf-8"), source, repo)

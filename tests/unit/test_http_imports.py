"""httpcore asks `import sniffio` for every lock it makes (several per HTTP request): that import must
be found once and then come from sys.modules, not fail and search sys.path again each time (which cost
about 0.1 ms per request's lock, on every registry HEAD and API request)."""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

import pytest
from httpcore._synchronization import AsyncLock, current_async_library

pytestmark = pytest.mark.unit


class _CountingFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.searched.append(fullname)
        return None  # let the real finders answer


def test_httpcore_locks_search_for_no_module() -> None:
    async def locks() -> str:
        for _ in range(20):
            async with AsyncLock():
                pass
        return current_async_library()

    asyncio.run(locks())  # whatever is imported once is imported now
    finder = _CountingFinder()
    sys.meta_path.insert(0, finder)
    try:
        assert asyncio.run(locks()) == "asyncio"
    finally:
        sys.meta_path.remove(finder)
    assert finder.searched == []

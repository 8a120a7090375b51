"""A small async client for the Kubernetes API on raw JSON (httpx + orjson).

Objects are plain dicts: callers project them into slim records of their own. Every request is
counted by verb so that benchmarks and tests can assert the API cost of a cycle.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from autorollout.kube.connection import ConnectionSettings, load_connection
from autorollout.kube.errors import (
    GoneError,
    KubeApiError,
    KubeUnreachableError,
    TooManyRequestsError,
    api_error,
)
from autorollout.registry.network import cancel_safe
from autorollout.retry_after import parse_retry_after

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
_MAX_THROTTLE_RETRIES = 3
_MAX_RETRY_AFTER_SECONDS = 30.0

JsonObject = dict[str, Any]


def _error_from(response: httpx.Response) -> KubeApiError:
    reason, message = response.reason_phrase, response.text[:500]
    try:
        status = orjson.loads(response.content)
        if isinstance(status, dict):
            reason = str(status.get("reason") or reason)
            message = str(status.get("message") or message)
    except orjson.JSONDecodeError:
        pass
    return api_error(
        response.status_code, reason, message, parse_retry_after(response.headers.get("Retry-After"))
    )


class KubeClient:
    """Thin async access to one API server; raises the errors of `autorollout.kube.errors`."""

    def __init__(self, settings: ConnectionSettings, *, timeout: float = 30.0) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.requests: Counter[str] = Counter()
        # Every connection kept: a rollout storm has 16 PATCHes and 8 Event POSTs in flight, and
        # with fewer kept alive each burst closed connections only to open them again (a TLS
        # handshake each, on both sides: 664 of them for 500 rollouts).
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        self._http = httpx.AsyncClient(
            base_url=settings.server,
            # The registry's backend: a cancelled handshake closes its socket, and the pool's checks
            # of its idle connections cost a poll() each, not a rebuild of anyio's attributes.
            transport=cancel_safe(httpx.AsyncHTTPTransport(verify=settings.ssl_context, limits=limits)),
            timeout=httpx.Timeout(timeout, connect=5.0),
            trust_env=False,
        )

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None) -> KubeClient:
        """Connect as `load_connection` decides (explicit kubeconfig, in-cluster, default kubeconfig)."""
        return cls(load_connection(kubeconfig))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.current()}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> JsonObject:
        """One API call; 429s are retried after the server's Retry-After, a few times at most."""
        content = orjson.dumps(body) if body is not None else None
        if content is not None and content_type is None:
            content_type = "application/json"
        verb = f"{method} {'watch' if params and params.get('watch') else ''}".strip()
        for attempt in range(_MAX_THROTTLE_RETRIES + 1):
            self.requests[verb] += 1
            try:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=self._headers(content_type)
                )
            except httpx.TransportError as exc:
                raise KubeUnreachableError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
            if response.is_success:
                result: JsonObject = orjson.loads(response.content) if response.content else {}
                return result
            error = _error_from(response)
            if isinstance(error, TooManyRequestsError) and attempt < _MAX_THROTTLE_RETRIES:
                await asyncio.sleep(min(error.retry_after or 1.0, _MAX_RETRY_AFTER_SECONDS))
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> JsonObject:
        return await self.request("GET", path, params=params)

    async def list(self, path: str, params: Mapping[str, str | int] | None = None) -> JsonObject:
        """A whole collection, following `continue` tokens; returns the last page's metadata."""
        query: dict[str, str | int] = dict(params or {})
        query.setdefault("limit", 500)
        items: list[JsonObject] = []
        while True:
            page = await self.get(path, query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                page["items"] = items
                return page
            query["continue"] = token

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        params: Mapping[str, str | int] | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, JsonObject]]:
        """Watch events `(type, object)` from `resource_version`; ends when the server closes the watch.

        Raises GoneError when the resource version is too old (the caller relists).
        """
        query: dict[str, str | int] = {
            **(params or {}),
            "watch": 1,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        self.requests["GET watch"] += 1
        try:
            async with self._http.stream(
                "GET",
                path,
                params=query,
                headers=self._headers(),
                timeout=httpx.Timeout(timeout_seconds + 30.0, connect=5.0),
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise _error_from(response)
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    event = orjson.loads(line)
                    kind, obj = event.get("type", ""), event.get("object") or {}
                    if kind == "ERROR":
                        code = int(obj.get("code") or 500)
                        error = api_error(code, str(obj.get("reason")), str(obj.get("message")))
                        raise error if code != 410 else GoneError(410, "Expired", str(obj.get("message")))
                    yield kind, obj
        except httpx.TransportError as exc:
            raise KubeUnreachableError(f"watch {path}: {type(exc).__name__}: {exc}") from None

    async def patch(self, path: str, ops: Any, content_type: str = JSON_PATCH) -> JsonObject:
        return await self.request("PATCH", path, body=ops, content_type=content_type)

    async def create(self, path: str, body: JsonObject) -> JsonObject:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JsonObject) -> JsonObject:
        return await self.request("PUT", path, body=body)

    async def delete(self, path: str) -> JsonObject:
        return await self.request("DELETE", path)

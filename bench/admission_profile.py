"""Where a warm admission review's CPU goes, in process (no TLS, no sockets, no wrk): the request
bytes of bench/admission.py fed to a uvicorn httptools protocol over an in-memory transport, the
response collected, `--requests` times per variant, CPU microseconds per request (median of
`--repeat` passes):

- `bare`: uvicorn's own HttpToolsProtocol and the fixed-answer ASGI app of bench/bare_endpoint.py
  (the end-to-end ceiling without TLS);
- `bare+limits`: the same app behind the webhook's LimitedHttpToolsProtocol (autorollout/serving.py);
- `webhook`: the webhook's app (`build_app`) behind LimitedHttpToolsProtocol, digest cache warm;
- `review`: `AdmissionReviewer.review(body)` alone, no HTTP.

`--profile NAME` prints a pyinstrument profile of that variant. The differences are the gap of the
end-to-end ratio in bench/admission.py, TLS aside (which costs both servers the same).

Usage: python -m bench.admission_profile [--requests 20000] [--repeat 5] [--profile webhook] [--out NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import uvicorn
import uvloop
from pyinstrument import Profiler
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from autorollout.cli.wiring import credential_store, open_admission_resolver, open_resolver
from autorollout.config import Config
from autorollout.references import parse_image_reference
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import Lookup
from autorollout.serving import LimitedHttpToolsProtocol, limited_config
from bench.admission import review
from bench.bare_endpoint import FixedAnswer
from bench.env import save
from bench.proc import load_average, machine
from webhook.admission import AdmissionReviewer
from webhook.app import build_app

IMAGES = [f"127.0.0.1:5000/bench/adm-{i}:latest" for i in range(3)]


class MemoryTransport(asyncio.Transport):
    """Collects what the protocol writes; `done` is set when a whole response was written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.done: asyncio.Event | None = None
        self.responses = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        if bytes(data[-2:]) == b"}" or data[-1:] == b"}":  # the body (JSON) ends the response
            self.responses += 1
            if self.done is not None:
                self.done.set()

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8443)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def http_request(body: bytes) -> bytes:
    head = (
        b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"
        b"Content-Type: application/json\r\nAccept: application/json, */*\r\n"
        b"User-Agent: kube-apiserver-admission\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    return head + body


async def per_request(protocol_class: type[HttpToolsProtocol], app: Any, data: bytes, n: int) -> float:
    config = uvicorn.Config(app, http=protocol_class, lifespan="off", access_log=False, log_config=None)
    if protocol_class is not HttpToolsProtocol:
        config = limited_config(app)
    config.load()
    state = uvicorn.server.ServerState()
    protocol = config.http_protocol_class(config=config, server_state=state, app_state={})
    transport = MemoryTransport()
    protocol.connection_made(transport)
    done = asyncio.Event()
    transport.done = done
    t0 = time.process_time()
    for _ in range(n):
        done.clear()
        protocol.data_received(data)
        await done.wait()
    elapsed = time.process_time() - t0
    protocol.connection_lost(None)
    return elapsed / n


async def variants() -> dict[str, Callable[[int], Any]]:
    config = Config.model_validate({"digestCacheTtlSeconds": 3600})
    stack = contextlib.AsyncExitStack()  # left open: the process ends after the measurement
    await stack.__aenter__()
    shared = await stack.enter_async_context(open_resolver(config))
    resolver = await stack.enter_async_context(open_admission_resolver(config, shared))
    credentials = credential_store(config)
    for image in IMAGES:
        ref = parse_image_reference(image)
        key = Lookup(ref, credentials.lookup(ref.registry)).key(False)
        shared.cache.put(key, ManifestDigest(digest="sha256:" + "ab" * 32, media_type=""))
    reviewer = AdmissionReviewer(resolver, credentials)
    body = orjson.dumps(review("bench", IMAGES[:2]))
    data = http_request(body)
    answer = await reviewer.review(body)
    assert b'"patch"' in answer, answer
    fixed = FixedAnswer(answer)
    app = build_app(reviewer)

    async def review_only(n: int) -> float:
        t0 = time.process_time()
        for _ in range(n):
            await reviewer.review(body)
        return (time.process_time() - t0) / n

    return {
        "bare": lambda n: per_request(HttpToolsProtocol, fixed, data, n),
        "bare+limits": lambda n: per_request(LimitedHttpToolsProtocol, fixed, data, n),
        "webhook": lambda n: per_request(LimitedHttpToolsProtocol, app, data, n),
        "review": review_only,
    }


async def main(requests: int, repeat: int, profile: str | None) -> dict[str, Any]:
    found = await variants()
    times: dict[str, list[float]] = {name: [] for name in found}
    for run in found.values():
        await run(500)  # warm up
    for _ in range(repeat):  # interleaved, so that a change in the machine's load hits every variant
        for name, run in found.items():
            times[name].append(await run(requests))
    results: dict[str, Any] = {
        name: {
            "cpu_us_per_request": statistics.median(t) * 1e6,
            "range_us": [min(t) * 1e6, max(t) * 1e6],
        }
        for name, t in times.items()
    }
    if profile is not None:
        with Profiler(async_mode="enabled", interval=0.0002) as profiler:
            await found[profile](requests)
        print(profiler.output_text(unicode=False, color=False))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", choices=["bare", "bare+limits", "webhook", "review"])
    parser.add_argument("--out", help="also save the result as bench/results/OUT.json")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(main(args.requests, args.repeat, args.profile))
    if args.out:
        save(args.out, {"machine": machine(), "load": round(load_average(), 2), "variants": result})
    print(json.dumps(result, indent=2))

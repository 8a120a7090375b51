"""Authentication against real registries: Basic (htpasswd), the token flow, Opaque bearer tokens,
credential lockout after a rejection, token caching and redirects that must not carry credentials."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autorollout.credentials import RegistryCredentials
from autorollout.registry.errors import CredentialBackoffError, UnauthorizedError, UnreachableError
from tests.fixtures.registry import client_for, credentials_for, ref
from tests.harness.registry import LocalRegistry, Mode
from tests.harness.tokenserver import SERVICE

pytestmark = pytest.mark.integration


class Clock:
    """A clock the test moves by hand (the client's lockout and token cache read it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_basic_wrong_password_is_unauthorized_then_not_retried(
    registry_basic: LocalRegistry, unique_repo: str
) -> None:
    registry_basic.push_image(unique_repo, "v1", seed=1)
    wrong = credentials_for(registry_basic, password="wrong-password")
    clock = Clock()
    image = ref(registry_basic, unique_repo, "v1")

    async def scenario() -> None:
        async with client_for(registry_basic, clock=clock) as client:
            with pytest.raises(UnauthorizedError, match="rejected the credentials"):
                await client.resolve(image, wrong)
            # anonymous probe + one Basic attempt; 401 is never retried
            assert registry_basic.request_count(path_substring=unique_repo) == 2
            for _ in range(5):
                with pytest.raises(CredentialBackoffError) as locked:
                    await client.resolve(image, wrong)
            assert 299 <= locked.value.retry_in <= 300
            assert registry_basic.request_count(path_substring=unique_repo) == 2

            # Anonymous lookups are not locked out: they go out (and are refused).
            with pytest.raises(UnauthorizedError, match="no credentials are configured"):
                await client.resolve(image, None)
            assert registry_basic.request_count(path_substring=unique_repo) == 3

            # After the backoff the credential is tried once more, fails, and is locked twice as long.
            clock.now += 301
            with pytest.raises(UnauthorizedError):
                await client.resolve(image, wrong)
            assert registry_basic.request_count(path_substring=unique_repo) == 4
            clock.now += 301
            with pytest.raises(CredentialBackoffError):
                await client.resolve(image, wrong)
            assert registry_basic.request_count(path_substring=unique_repo) == 4

            # The right password for the same registry is a different credential: not locked.
            digest = await client.resolve(image, credentials_for(registry_basic))
            assert digest.digest.startswith("sha256:")

    asyncio.run(scenario())


def test_basic_credentials_sent_up_front_once_challenge_known(
    registry_basic: LocalRegistry, unique_repo: str
) -> None:
    registry_basic.push_image(unique_repo, "v1", seed=2)
    creds = credentials_for(registry_basic)

    async def scenario() -> None:
        async with client_for(registry_basic) as client:
            for _ in range(3):
                await client.resolve(ref(registry_basic, unique_repo, "v1"), creds)

    asyncio.run(scenario())
    assert registry_basic.request_count("HEAD", unique_repo, status=401) == 1
    assert registry_basic.request_count("HEAD", unique_repo, status=200) == 3


def test_token_wrong_password_locks_without_retry_storm(
    registry_token: LocalRegistry, unique_repo: str
) -> None:
    registry_token.push_image(unique_repo, "v1", seed=3)
    tokens = registry_token.token_server
    assert tokens is not None
    wrong = credentials_for(registry_token, password="wrong-password")
    image = ref(registry_token, unique_repo, "v1")

    async def scenario() -> None:
        async with client_for(registry_token) as client:
            failed_before = tokens.request_count()
            with pytest.raises(UnauthorizedError, match="rejected the credentials"):
                await client.resolve(image, wrong)
            assert tokens.request_count() == failed_before + 1
            assert registry_token.request_count(path_substring=unique_repo) == 1
            for _ in range(5):
                with pytest.raises(CredentialBackoffError):
                    await client.resolve(image, wrong)
            assert tokens.request_count() == failed_before + 1
            assert registry_token.request_count(path_substring=unique_repo) == 1

    asyncio.run(scenario())


def test_token_cached_until_expiry(registry_token: LocalRegistry, unique_repo: str) -> None:
    registry_token.push_image(unique_repo, "a", seed=4)
    registry_token.push_image(unique_repo, "b", seed=5)
    tokens = registry_token.token_server
    assert tokens is not None
    creds = credentials_for(registry_token)
    clock = Clock()
    scope = f"repository:{unique_repo}:pull"

    async def scenario() -> None:
        async with client_for(registry_token, clock=clock) as client:
            await client.resolve(ref(registry_token, unique_repo, "a"), creds)
            await client.resolve(ref(registry_token, unique_repo, "b"), creds)
            await client.resolve(ref(registry_token, unique_repo, "a"), creds)
            assert tokens.issued_count(scope) == 1
            # 401 challenge once, then the token goes up front.
            agent = "kube-autorollout/"
            assert (
                registry_token.request_count("HEAD", unique_repo, status=401, user_agent_substring=agent) == 1
            )
            assert (
                registry_token.request_count("HEAD", unique_repo, status=200, user_agent_substring=agent) == 3
            )
            # The token server said expires_in=300: renewed (up front, no new 401) once that has passed.
            clock.now += 299
            await client.resolve(ref(registry_token, unique_repo, "a"), creds)
            assert tokens.issued_count(scope) == 2
            assert (
                registry_token.request_count("HEAD", unique_repo, status=401, user_agent_substring=agent) == 1
            )

    asyncio.run(scenario())


def test_concurrent_lookups_of_one_scope_fetch_one_token(
    registry_token: LocalRegistry, unique_repo: str
) -> None:
    tags = [f"t{i}" for i in range(5)]
    for i, tag in enumerate(tags):
        registry_token.push_image(unique_repo, tag, seed=10 + i)
    tokens = registry_token.token_server
    assert tokens is not None
    creds = credentials_for(registry_token)
    scope = f"repository:{unique_repo}:pull"

    async def scenario() -> None:
        async with client_for(registry_token) as client:
            # Learn the registry's challenge first (another repository), then 5 lookups at once.
            await client.resolve(ref(registry_token, unique_repo, "t0"), creds)
            client.auth_state.tokens.discard((tokens.realm, SERVICE, scope, creds.fingerprint()))  # type: ignore[union-attr]
            before = tokens.issued_count(scope)
            await asyncio.gather(*(client.resolve(ref(registry_token, unique_repo, t), creds) for t in tags))
            assert tokens.issued_count(scope) == before + 1

    asyncio.run(scenario())


def test_token_flow_anonymous_gets_no_access(registry_token: LocalRegistry, unique_repo: str) -> None:
    registry_token.push_image(unique_repo, "v1", seed=6)

    async def scenario() -> None:
        async with client_for(registry_token) as client:
            with pytest.raises(UnauthorizedError, match="no credentials are configured"):
                await client.resolve(ref(registry_token, unique_repo, "v1"), None)

    asyncio.run(scenario())


def test_opaque_token_sent_as_bearer(registry_token: LocalRegistry, unique_repo: str) -> None:
    digest = registry_token.push_image(unique_repo, "v1", seed=7)
    tokens = registry_token.token_server
    assert tokens is not None
    issued = tokens.issue("tester", [f"repository:{unique_repo}:pull"], SERVICE)
    image = ref(registry_token, unique_repo, "v1")

    async def scenario() -> None:
        async with client_for(registry_token) as client:
            result = await client.resolve(image, RegistryCredentials(token=issued))
            assert result.digest == digest
            # no anonymous probe, no token fetch: one HEAD with the bearer token
            assert registry_token.request_count("HEAD", unique_repo) == 1
            bogus = RegistryCredentials(token="not-a-valid-token")
            with pytest.raises(UnauthorizedError, match="rejected the credentials"):
                await client.resolve(image, bogus)
            with pytest.raises(CredentialBackoffError):
                await client.resolve(image, bogus)
            assert registry_token.request_count("HEAD", unique_repo) == 2

    asyncio.run(scenario())


class _Redirector:
    """A front door on 127.0.0.1 that asks for Basic credentials, then redirects the manifest
    request to the real registry under the name "localhost": another host for the client."""

    def __init__(self, target_port: int) -> None:
        self.authorizations: list[str | None] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                authorization = self.headers.get("Authorization")
                front.authorizations.append(authorization)
                if authorization is None:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="front"')
                else:
                    self.send_response(307)
                    self.send_header("Location", f"http://localhost:{target_port}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirector(registry_basic: LocalRegistry) -> Iterator[_Redirector]:
    front = _Redirector(registry_basic.port)
    try:
        yield front
    finally:
        front.close()


def test_credentials_do_not_follow_redirect_to_another_host(
    registry_basic: LocalRegistry, redirector: _Redirector, unique_repo: str
) -> None:
    registry_basic.push_image(unique_repo, "v1", seed=8)
    creds = credentials_for(registry_basic)  # valid at the registry: would give 200 if forwarded
    image = ref(registry_basic, unique_repo, "v1")
    image = type(image)(registry=f"127.0.0.1:{redirector.port}", repository=unique_repo, tag="v1")

    async def scenario() -> None:
        async with client_for(registry_basic) as client:
            with pytest.raises(UnauthorizedError):
                await client.resolve(image, creds)

    asyncio.run(scenario())
    assert redirector.authorizations[0] is None
    assert (redirector.authorizations[1] or "").startswith("Basic ")
    # The registry saw the redirected request without credentials, and the client did not answer
    # its challenge with them either.
    assert registry_basic.request_count("HEAD", unique_repo, status=401) == 1
    assert registry_basic.request_count("HEAD", unique_repo, status=200) == 0


def test_token_service_down_is_unreachable(registry_factory: Callable[[Mode], LocalRegistry]) -> None:
    registry = registry_factory("token")
    registry.push_image("team/app", "v1", seed=9)
    assert registry.token_server is not None
    registry.token_server.stop()

    async def scenario() -> None:
        async with client_for(registry) as client:
            with pytest.raises(UnreachableError, match="token service"):
                await client.resolve(ref(registry, "team/app", "v1"), credentials_for(registry))

    asyncio.run(scenario())

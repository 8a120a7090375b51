"""Credentials at real registries and token services, whatever shape they come in and whatever the
other side answers: values ending in a newline (what `kubectl create secret --from-file` leaves)
authenticate; values no HTTP header can carry are refused before anything is sent, with an error
that names their source; and a registry that echoes the request back in its error body never gets
a credential into the error message or the `digest` command's output."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from autorollout.credentials import RegistryCredentials
from autorollout.references import parse_image_reference
from autorollout.registry.authorization import REDACTED
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import InvalidCredentialsError, RegistryError
from tests.e2e.webhook_process import start_webhook
from tests.fixtures.registry import client_for, ref
from tests.harness.echoregistry import EchoRegistry
from tests.harness.registry import TEST_USER, LocalRegistry, Mode
from tests.harness.tokenserver import SERVICE, TokenServer
from tests.integration.test_cli_digest import run_many, write_config
from tests.unit.webhook_samples import review, workload

pytestmark = pytest.mark.integration

NEWLINE = "\n"


def _opaque(host: str, *, token: str, username: str | None = None) -> dict[str, object]:
    secret: dict[str, object] = {"type": "Opaque", "token": token}
    if username is not None:
        secret["username"] = username
    return {"hostnamePattern": host, "secret": secret}


def _mounted(directory: Path, host: str, entry: dict[str, str]) -> dict[str, object]:
    directory.mkdir(parents=True)
    (directory / ".dockerconfigjson").write_text(json.dumps({"auths": {host: entry}}))
    return {"hostnamePattern": host, "secret": {"type": "ImagePullSecret", "mountPath": str(directory)}}


# --- values with surrounding whitespace authenticate ------------------------------------------------


def test_credentials_ending_in_a_newline_authenticate_from_every_source(
    registry_basic: LocalRegistry, registry_token: LocalRegistry, unique_repo: str, tmp_path: Path
) -> None:
    basic_digest = registry_basic.push_image(unique_repo, "v1", seed=1)
    token_digest = registry_token.push_image(unique_repo, "v1", seed=2)
    assert registry_basic.password is not None
    assert registry_token.password is not None
    tokens = registry_token.token_server
    assert tokens is not None
    static = tokens.issue(TEST_USER, [f"repository:{unique_repo}:pull"], SERVICE)
    basic_pw, token_pw = registry_basic.password + NEWLINE, registry_token.password + "\r\n"
    login = base64.b64encode(f"{TEST_USER}:{basic_pw}".encode()).decode() + NEWLINE  # `echo ... | base64`
    setups: dict[str, tuple[dict[str, object], dict[str, str], LocalRegistry, str]] = {
        "${VAR} password, Basic": (
            _opaque(registry_basic.host, username=TEST_USER, token="${PW}"),
            {"PW": basic_pw},
            registry_basic,
            basic_digest,
        ),
        "Secret name+key token (env)": (
            {"hostnamePattern": registry_token.host, "secret": {"name": "regcred", "key": "TOKEN"}},
            {"TOKEN": static + NEWLINE},
            registry_token,
            token_digest,
        ),
        "dockerconfigjson auth": (
            _mounted(tmp_path / "auth", registry_basic.host, {"auth": login}),
            {},
            registry_basic,
            basic_digest,
        ),
        "dockerconfigjson password, token flow": (
            _mounted(
                tmp_path / "pw", registry_token.host, {"username": f" {TEST_USER}\n", "password": token_pw}
            ),
            {},
            registry_token,
            token_digest,
        ),
        "dockerconfigjson registrytoken": (
            _mounted(tmp_path / "rt", registry_token.host, {"registrytoken": f"{static}\n"}),
            {},
            registry_token,
            token_digest,
        ),
    }
    invocations = []
    for index, (entry, env, registry, _) in enumerate(setups.values()):
        (tmp_path / f"config-{index}").mkdir()
        config = write_config(tmp_path / f"config-{index}", {"registries": [entry]})
        invocations.append(((f"{registry.host}/{unique_repo}:v1",), config, env))
    results = run_many(*invocations)
    outcomes = {name: (r.returncode, r.stdout, r.stderr) for name, r in zip(setups, results, strict=True)}
    expected = {name: (0, digest + "\n", "") for name, (_, _, _, digest) in setups.items()}
    assert outcomes == expected
    # Nothing was rejected on the way: no failed login that a self-hosted registry would count.
    assert registry_basic.request_count(path_substring=unique_repo, status=401) <= 2  # the anonymous probes
    assert all(r.status == 200 for r in tokens.requests if r.username is not None)


def test_issued_token_ending_in_a_newline_is_used_and_cached(
    registry_factory: Callable[[Mode], LocalRegistry],
) -> None:
    registry = registry_factory("token")
    digest = registry.push_image("team/app", "v1", seed=3)
    assert registry.token_server is not None
    registry.token_server.token_suffix = "\n"
    creds = RegistryCredentials(TEST_USER, registry.password)

    async def scenario() -> None:
        async with client_for(registry) as client:
            for _ in range(3):
                assert (await client.resolve(ref(registry, "team/app", "v1"), creds)).digest == digest

    asyncio.run(scenario())
    assert registry.token_server.issued_count("repository:team/app:pull") == 1


# --- values no header can carry: refused before sending, naming the source ---------------------------


def test_non_ascii_issued_token_is_a_clear_error_and_never_sent(
    registry_factory: Callable[[Mode], LocalRegistry], tmp_path: Path
) -> None:
    registry = registry_factory("token")
    registry.push_image("team/app", "v1", seed=4)
    tokens = registry.token_server
    assert tokens is not None
    tokens.token_suffix = "\u00e9"

    async def scenario() -> RegistryError:
        async with client_for(registry) as client:
            with pytest.raises(InvalidCredentialsError) as info:
                await client.resolve(
                    ref(registry, "team/app", "v1"), RegistryCredentials(TEST_USER, registry.password)
                )
            return info.value

    error = asyncio.run(scenario())
    assert f"the token issued by the token service {tokens.realm} contains a non-ASCII character" in str(
        error
    )
    issued = tokens.issue(TEST_USER, ["repository:team/app:pull"], SERVICE)
    assert issued.split(".")[0] not in str(error)
    # The anonymous probe only: the token that cannot be a header never reached the registry.
    assert registry.request_count(path_substring="team/app") == 1

    config = write_config(
        tmp_path, {"registries": [_opaque(registry.host, username=TEST_USER, token="${PW}")]}
    )
    [cli] = run_many(((f"{registry.host}/team/app:v1",), config, {"PW": registry.password or ""}))
    assert cli.returncode == 1
    assert cli.stderr.startswith("kube-autorollout: InvalidCredentialsError: ")
    assert cli.stderr.count("\n") == 1
    assert "Traceback" not in cli.stderr
    assert issued.split(".")[0] not in cli.stderr


@pytest.fixture
def echo_registry() -> Iterator[Callable[[int, str | None], EchoRegistry]]:
    started: list[EchoRegistry] = []

    def start(status: int, challenge: str | None) -> EchoRegistry:
        started.append(EchoRegistry(status, challenge))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.close()


@pytest.mark.parametrize(
    "token",
    [
        f"inner{NEWLINE}line-{secrets.token_hex(8)}",
        f"api-{secrets.token_hex(8)}\r\nX-Injected: 1",
        f"t\u00f6ken-{secrets.token_hex(8)}",
    ],
    ids=["newline", "header-injection", "non-ascii"],
)
def test_static_token_no_header_can_carry_is_refused_before_sending(
    echo_registry: Callable[[int, str | None], EchoRegistry], token: str, tmp_path: Path
) -> None:
    echo = echo_registry(403, None)
    image = parse_image_reference(f"{echo.host}/team/app:v1")
    creds = RegistryCredentials(token=token, source="registries[0].secret.token")

    async def scenario() -> RegistryError:
        async with RegistryClient() as client:
            with pytest.raises(InvalidCredentialsError) as info:
                await client.resolve(image, creds)
            return info.value

    error = asyncio.run(scenario())
    assert "the token of registries[0].secret.token contains a" in str(error)
    assert echo.connections == 0  # refused before even connecting

    config = write_config(tmp_path, {"registries": [_opaque(echo.host, token="${TOKEN}")]})
    [cli] = run_many(((str(image),), config, {"TOKEN": token}))
    assert (cli.returncode, cli.stdout) == (1, "")
    assert cli.stderr.startswith("kube-autorollout: InvalidCredentialsError: ")
    assert "registries[0].secret.token" in cli.stderr
    assert cli.stderr.count("\n") == 1
    for part in (p for p in token.split() if len(p) >= 8):  # every distinctive piece, each line
        assert part not in cli.stderr
        assert part not in str(error)
    assert echo.connections == 0


# --- a registry that echoes the request back ----------------------------------------------------------

KINDS = ("static bearer", "basic", "token flow")


def _echo_for(
    kind: str, status: int, start: Callable[[int, str | None], EchoRegistry], tokens: TokenServer
) -> tuple[EchoRegistry, RegistryCredentials, dict[str, object]]:
    """The echo registry for one kind of credentials, those credentials, and their config entry."""
    if kind == "static bearer":
        echo = start(status, None)
        token = "tok-" + secrets.token_urlsafe(24)
        return echo, RegistryCredentials(token=token), _opaque(echo.host, token="${SECRET}")
    challenge = (
        'Basic realm="echo"' if kind == "basic" else f'Bearer realm="{tokens.realm}",service="{SERVICE}"'
    )
    echo = start(status, challenge)
    creds = RegistryCredentials(TEST_USER, tokens.users[TEST_USER])
    return echo, creds, _opaque(echo.host, username=TEST_USER, token="${SECRET}")


def _forbidden(creds: RegistryCredentials, echo: EchoRegistry) -> dict[str, str]:
    """Each credential in use, each Authorization value the echo registry saw (issued tokens too),
    and the first 16 characters of each: not even a cut-off start may show."""
    values = {"password": creds.password or "", "token": creds.token or ""}
    for index, header in enumerate(echo.authorizations):
        values[f"Authorization #{index}"] = header
        values[f"its credential #{index}"] = header.split(" ", 1)[1]
    values |= {f"start of {name}": value[:16] for name, value in values.items()}
    return {name: value for name, value in values.items() if len(value) >= 8}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
@pytest.mark.parametrize("kind", KINDS)
def test_echoed_credentials_are_redacted_from_the_error(
    echo_registry: Callable[[int, str | None], EchoRegistry],
    token_service: TokenServer,
    kind: str,
    status: int,
) -> None:
    echo, creds, _ = _echo_for(kind, status, echo_registry, token_service)
    image = parse_image_reference(f"{echo.host}/team/app:v1")

    async def scenario() -> RegistryError:
        async with RegistryClient() as client:
            with pytest.raises(RegistryError) as info:
                await client.resolve(image, creds)
            return info.value

    message = str(asyncio.run(scenario()))
    assert echo.authorizations, "the credentials were sent (and echoed)"
    assert f"HTTP {status}: DENIED: Authorization: {REDACTED}" in message  # quoted, then redacted
    assert [name for name, value in _forbidden(creds, echo).items() if value in message] == []


def test_echoed_credentials_never_reach_the_digest_command_output(
    echo_registry: Callable[[int, str | None], EchoRegistry], token_service: TokenServer, tmp_path: Path
) -> None:
    runs = []
    for kind in KINDS:
        echo, creds, entry = _echo_for(kind, 403, echo_registry, token_service)
        (tmp_path / kind).mkdir()
        config = write_config(tmp_path / kind, {"registries": [entry]})
        runs.append(
            (
                echo,
                creds,
                (
                    (f"{echo.host}/team/app:v1",),
                    config,
                    {"SECRET": (creds.token or creds.password or "") + "\n"},
                ),
            )
        )
    results = run_many(*(invocation for _, _, invocation in runs))
    for (echo, creds, _), result in zip(runs, results, strict=True):
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr.startswith("kube-autorollout: ForbiddenError: ")
        assert REDACTED in result.stderr
        assert [name for name, value in _forbidden(creds, echo).items() if value in result.stderr] == []


def test_webhook_warnings_and_log_carry_no_credential(
    echo_registry: Callable[[int, str | None], EchoRegistry],
    token_service: TokenServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setups = [_echo_for(kind, 403, echo_registry, token_service) for kind in KINDS]
    broken = echo_registry(403, None)
    unsendable = f"t\u00f6ken-{secrets.token_hex(12)}"
    registries = [entry for _, _, entry in setups] + [_opaque(broken.host, token=unsendable)]
    secret_values = {
        f"SECRET_{i}": (c.token or c.password or "") + "\n" for i, (_, c, _) in enumerate(setups)
    }
    for index, entry in enumerate(registries[:3]):
        entry["secret"]["token"] = f"${{SECRET_{index}}}"  # type: ignore[index]
    containers = [(f"c{i}", f"{echo.host}/team/app:v1") for i, (echo, _, _) in enumerate(setups)]
    containers.append(("broken", f"{broken.host}/team/app:v1"))
    for name, value in secret_values.items():
        monkeypatch.setenv(name, value)  # the webhook process inherits them
    hook = start_webhook(tmp_path / "webhook", None, budget=4.0, extra_config={"registries": registries})
    try:
        context = ssl.create_default_context(cafile=str(hook.ca_file))
        with httpx.Client(verify=context, timeout=15, trust_env=False) as http:
            answer = http.post(hook.url, content=orjson.dumps(review(workload(containers=containers))))
    finally:
        assert hook.stop() == 0
    assert answer.status_code == 200
    warnings = answer.json()["response"].get("warnings", [])
    assert any("c0" in w and "access denied" in w for w in warnings), warnings
    assert any("broken" in w and "credentials cannot be sent in an HTTP header" in w for w in warnings), (
        warnings
    )
    assert broken.connections == 0
    text = answer.text + hook.log_text()
    forbidden = {"unsendable": unsendable}
    for echo, creds, _ in setups:
        assert echo.authorizations, "sent and echoed"
        forbidden |= {f"{echo.host} {name}": value for name, value in _forbidden(creds, echo).items()}
    assert [name for name, value in forbidden.items() if value in text] == []
    print(f"searched {len(text)} characters of the answer and the webhook's log for {len(forbidden)} strings")

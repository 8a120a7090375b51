"""Credentials: dockerconfigjson parsing, choosing credentials by host, and never revealing a secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from autorollout.config import Config, RegistryConfig, RegistrySecret, load_config_text
from autorollout.credentials import (
    CredentialsError,
    CredentialStore,
    RegistryCredentials,
    normalize_registry_host,
    parse_dockerconfigjson,
)
from autorollout.kube.pull_secrets import credentials_from_secret

pytestmark = pytest.mark.unit

PASSWORD = "pa:ss-W0rd-value"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dockerconfig(auths: dict[str, dict[str, str]]) -> str:
    return json.dumps({"auths": auths})


# --- RegistryCredentials -------------------------------------------------------------------------


def test_repr_hides_password_and_token() -> None:
    creds = RegistryCredentials(username="jane", password=PASSWORD, token="bearer-secret")
    assert "jane" in repr(creds)
    assert PASSWORD not in repr(creds)
    assert "bearer-secret" not in repr(creds)
    assert PASSWORD not in str(creds)


def test_fingerprint_identifies_without_revealing() -> None:
    a = RegistryCredentials(username="jane", password=PASSWORD)
    assert a.fingerprint() == RegistryCredentials(username="jane", password=PASSWORD).fingerprint()
    assert a.fingerprint() != RegistryCredentials(username="jane", password="other").fingerprint()
    assert a.fingerprint() != RegistryCredentials(token=PASSWORD).fingerprint()
    assert (
        RegistryCredentials(username="a:b").fingerprint()
        != RegistryCredentials(username="a", password="b").fingerprint()
    )
    assert PASSWORD not in a.fingerprint()
    assert len(a.fingerprint()) == 16
    assert {a: 1}[RegistryCredentials(username="jane", password=PASSWORD)] == 1  # usable as a key


# --- dockerconfigjson ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://docker.io", "docker.io"),
        ("https://ghcr.io", "ghcr.io"),
        ("Registry.Example.com:5000/some/path", "registry.example.com:5000"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("*.gcr.io", "*.gcr.io"),
    ],
)
def test_keys_are_normalized_hosts(key: str, host: str) -> None:
    assert normalize_registry_host(key) == host
    parsed = parse_dockerconfigjson(dockerconfig({key: {"username": "u", "password": "p"}}))
    assert list(parsed) == [host]


def test_auth_and_username_password_forms() -> None:
    parsed = parse_dockerconfigjson(
        dockerconfig(
            {
                "a.io": {"auth": b64(f"jane:{PASSWORD}")},
                "b.io": {"username": "bob", "password": PASSWORD, "email": "b@example.com"},
                # auth wins over username/password, as the kubelet reads it
                "c.io": {"auth": b64("real:pw"), "username": "stale", "password": "stale"},
                "d.io": {"registrytoken": "bearer-token"},
                "e.io": {"email": "nothing-else@example.com"},
                "f.io": {"auth": b64("noPadding:x")[:-1].rstrip("=")},
            }
        ).encode()
    )
    assert parsed["a.io"] == RegistryCredentials(username="jane", password=PASSWORD)
    assert parsed["b.io"] == RegistryCredentials(username="bob", password=PASSWORD)
    assert parsed["c.io"] == RegistryCredentials(username="real", password="pw")
    assert parsed["d.io"] == RegistryCredentials(token="bearer-token")
    assert "e.io" not in parsed
    assert parsed["f.io"].username == "noPadding"


def test_upstream_readme_dockerconfig_example_shape() -> None:
    data = {
        "auths": {
            "your.private.registry.example.com": {
                "username": "janedoe",
                "password": "xxxxxxxxxxx",
                "email": "jdoe@example.com",
                "auth": b64("janedoe:xxxxxxxxxxx"),
            }
        }
    }
    parsed = parse_dockerconfigjson(json.dumps(data))
    assert parsed == {"your.private.registry.example.com": RegistryCredentials("janedoe", "xxxxxxxxxxx")}


def test_legacy_dockercfg_and_config_json_settings() -> None:
    legacy = json.dumps({"https://quay.io": {"auth": b64("q:pw")}, "credsStore": "desktop"})
    assert parse_dockerconfigjson(legacy) == {"quay.io": RegistryCredentials("q", "pw")}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ('{"auths": {"a.io": {"auth": "' + PASSWORD + '"', "not valid JSON"),
        (b"\xff\xfe\x00garbage" + PASSWORD.encode(), "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"auths": []}', '"auths" is not a JSON object'),
        ('{"auths": {"a.io": "' + PASSWORD + '"}}', 'auths["a.io"]: not a JSON object'),
        ('{"auths": {"a.io": {"auth": "' + PASSWORD + '!!"}}}', 'auths["a.io"].auth: not valid base64'),
        (
            '{"auths": {"a.io": {"auth": "' + b64("no-colon-" + PASSWORD.replace(":", "")) + '"}}}',
            "does not decode",
        ),
        ('{"auths": {"a.io": {"password": 12345}}}', 'auths["a.io"].password: not a string'),
    ],
)
def test_bad_dockerconfig_is_a_credentials_error_without_the_secret(data: str | bytes, fragment: str) -> None:
    with pytest.raises(CredentialsError) as info:
        parse_dockerconfigjson(data)
    assert any(fragment in p for p in info.value.problems), info.value.problems
    assert PASSWORD not in str(info.value)
    assert PASSWORD.replace(":", "") not in str(info.value)
    assert "12345" not in str(info.value)
    assert info.value.__cause__ is None


# --- CredentialStore -----------------------------------------------------------------------------


def write_secret(directory: Path, auths: dict[str, dict[str, str]], name: str = ".dockerconfigjson") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(dockerconfig(auths))
    return path


def config_of(*entries: tuple[str, RegistrySecret]) -> Config:
    return Config(registries=[RegistryConfig(hostname_pattern=p, secret=s) for p, s in entries])


def test_store_from_upstream_style_config(tmp_path: Path) -> None:
    write_secret(tmp_path / "docker-io", {"https://index.docker.io/v1/": {"auth": b64("hub:hubpw")}})
    write_secret(tmp_path / "ghcr-io", {"ghcr.io": {"username": "gh", "password": "ghpw"}}, "config.json")
    config = load_config_text(
        f"""
registries:
  - hostnamePattern: "docker.io"
    secret: {{type: ImagePullSecret, mountPath: "{tmp_path / "docker-io"}"}}
  - hostnamePattern: "*.artifactory.example.com"
    secret: {{type: Opaque, token: "${{REGISTRY_TOKEN}}"}}
  - hostnamePattern: "ghcr.io"
    secret: {{type: ImagePullSecret, mountPath: "{tmp_path / "ghcr-io"}"}}
  - hostnamePattern: "basic.example.com"
    secret: {{type: Opaque, username: robot, token: robot-pw}}
  - hostnamePattern: "env.example.com"
    secret: {{type: Opaque, name: k8s-secret, key: IDENTITY_TOKEN}}
  - hostnamePattern: "*"
    secret: {{type: None}}
""",
        {"REGISTRY_TOKEN": "identity-token"},
    )
    store = CredentialStore.from_config(config, environ={"IDENTITY_TOKEN": "from-env"})
    assert store.problems == []
    hub = RegistryCredentials("hub", "hubpw")
    assert store.lookup("docker.io") == hub
    assert store.lookup("registry-1.docker.io") == hub
    assert store.lookup("x.artifactory.example.com") == RegistryCredentials(token="identity-token")
    assert store.lookup("ghcr.io") == RegistryCredentials("gh", "ghpw")
    assert store.lookup("basic.example.com") == RegistryCredentials(username="robot", password="robot-pw")
    assert store.lookup("env.example.com") == RegistryCredentials(token="from-env")
    assert store.lookup("quay.io") is None  # type None: anonymous


def test_first_matching_entry_wins_even_when_anonymous() -> None:
    store = CredentialStore.from_config(
        config_of(
            ("*.example.com", RegistrySecret(type="None")),
            ("a.example.com", RegistrySecret(type="Opaque", token="t")),
            ("a.example.*", RegistrySecret(type="Opaque", token="later")),
        )
    )
    assert store.lookup("a.example.com") is None
    assert store.lookup("a.example.org") == RegistryCredentials(token="later")
    assert store.lookup("elsewhere.io") is None


def test_pull_secrets_come_before_the_config() -> None:
    store = CredentialStore.from_config(config_of(("ghcr.io", RegistrySecret(type="Opaque", token="config"))))
    workload = [
        parse_dockerconfigjson(dockerconfig({"quay.io": {"auth": b64("q:1")}})),
        parse_dockerconfigjson(dockerconfig({"https://ghcr.io": {"auth": b64("pod:2")}})),
        parse_dockerconfigjson(dockerconfig({"ghcr.io": {"auth": b64("second:3")}})),
    ]
    assert store.lookup("ghcr.io", workload) == RegistryCredentials("pod", "2")
    assert store.lookup("ghcr.io", workload[:1]) == RegistryCredentials(token="config")
    assert store.lookup("quay.io", workload) == RegistryCredentials("q", "1")
    hub = [parse_dockerconfigjson(dockerconfig({"https://index.docker.io/v1/": {"auth": b64("h:4")}}))]
    assert (
        store.lookup("docker.io", hub)
        == store.lookup("registry-1.docker.io", hub)
        == RegistryCredentials("h", "4")
    )
    assert store.lookup("127.0.0.1:5000", [{"127.0.0.1": RegistryCredentials("no", "port")}]) is None
    assert store.lookup("eu.gcr.io", [{"*.gcr.io": RegistryCredentials("g", "5")}]) == RegistryCredentials(
        "g", "5"
    )


def test_image_pull_secret_host_selection(tmp_path: Path) -> None:
    write_secret(
        tmp_path / "multi", {"a.example.com": {"auth": b64("a:1")}, "b.example.com": {"auth": b64("b:2")}}
    )
    write_secret(tmp_path / "single", {"artifactory.example.com": {"auth": b64("art:3")}})
    store = CredentialStore.from_config(
        config_of(
            ("*.example.com", RegistrySecret(type="ImagePullSecret", mount_path=str(tmp_path / "multi"))),
            ("*.example.org", RegistrySecret(type="ImagePullSecret", mount_path=str(tmp_path / "single"))),
        )
    )
    assert store.lookup("b.example.com") == RegistryCredentials("b", "2")
    assert store.lookup("c.example.com") is None  # several hosts in the file, none of them this one
    # A file with a single entry serves whatever host its pattern matched.
    assert store.lookup("docker-local.example.org") == RegistryCredentials("art", "3")


def test_mount_path_may_name_the_file_itself(tmp_path: Path) -> None:
    path = write_secret(tmp_path, {"r.io": {"auth": b64("f:1")}}, "my-secret.json")
    store = CredentialStore.from_config(
        config_of(("r.io", RegistrySecret(type="ImagePullSecret", mount_path=str(path))))
    )
    assert store.lookup("r.io") == RegistryCredentials("f", "1")


def test_unreadable_secrets_are_reported_by_key_path_never_with_content(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ".dockerconfigjson").write_text('{"auths": {"r.io": {"auth": "' + PASSWORD)
    config = config_of(
        ("a.io", RegistrySecret(type="ImagePullSecret", mount_path=str(tmp_path / "missing"))),
        ("b.io", RegistrySecret(type="ImagePullSecret", mount_path=str(broken))),
        ("c.io", RegistrySecret(type="Opaque", name="s", key="UNSET_VAR")),
        ("d.io", RegistrySecret(type="Opaque", token="ok")),
    )
    with pytest.raises(CredentialsError) as info:
        CredentialStore.from_config(config, environ={})
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("registries[0].secret.mountPath: no .dockerconfigjson")
    assert str(tmp_path / "missing") in problems[0]
    assert problems[1].startswith("registries[1].secret.mountPath: ")
    assert "not valid JSON" in problems[1]
    assert problems[2].startswith("registries[2].secret.key: environment variable UNSET_VAR is not set")
    assert PASSWORD not in str(info.value)

    lenient = CredentialStore.from_config(config, environ={}, strict=False)
    assert lenient.problems == problems
    assert lenient.lookup("a.io") is None
    assert lenient.lookup("d.io") == RegistryCredentials(token="ok")


def test_rotated_image_pull_secret_is_reread(tmp_path: Path) -> None:
    now = [0.0]
    mount = tmp_path / "rotating"
    config = config_of(("r.io", RegistrySecret(type="ImagePullSecret", mount_path=str(mount))))
    store = CredentialStore.from_config(config, strict=False, refresh_interval=30, clock=lambda: now[0])
    assert store.lookup("r.io") is None
    assert len(store.problems) == 1

    write_secret(mount, {"r.io": {"auth": b64("v1:old")}})
    now[0] = 31
    assert store.lookup("r.io") == RegistryCredentials("v1", "old")
    assert store.problems == []

    write_secret(mount, {"r.io": {"auth": b64("v2:newer")}})
    now[0] = 40  # within the refresh interval: not looked at yet
    assert store.lookup("r.io") == RegistryCredentials("v1", "old")
    now[0] = 62
    assert store.lookup("r.io") == RegistryCredentials("v2", "newer")

    (mount / ".dockerconfigjson").write_text("{broken")
    now[0] = 100
    assert store.lookup("r.io") == RegistryCredentials("v2", "newer")  # keeps the last good one
    assert "not valid JSON" in store.problems[0]


def test_static_store_for_code_and_tests() -> None:
    store = CredentialStore([("127.0.0.1:*", RegistryCredentials("u", "p")), ("*", None)])
    assert store.lookup("127.0.0.1:5000") == RegistryCredentials("u", "p")
    assert store.lookup("ghcr.io") is None
    assert CredentialStore.from_config(Config()).lookup("ghcr.io") is None


# --- normalisation and where credentials came from ------------------------------------------------

SPACE = " \t\r\n"  # what `kubectl create secret --from-file` and editors leave around a value


def test_every_field_is_stripped_on_creation() -> None:
    creds = RegistryCredentials(username=f"{SPACE}jane{SPACE}", password=f"{PASSWORD}\n", token=" tok\r\n")
    assert (creds.username, creds.password, creds.token) == ("jane", PASSWORD, "tok")
    assert creds == RegistryCredentials("jane", PASSWORD, "tok")
    assert creds.fingerprint() == RegistryCredentials("jane", PASSWORD, "tok").fingerprint()
    assert RegistryCredentials(username="u", password=" \n").password is None
    assert RegistryCredentials(token="\n").empty
    # Inner whitespace is the value's own: kept (and refused when sent, see test_registry_authorization).
    assert RegistryCredentials(password="a b\nc").password == "a b\nc"


def test_dockerconfigjson_values_are_normalised_in_every_form() -> None:
    parsed = parse_dockerconfigjson(
        dockerconfig(
            {
                # `echo jane:pw | base64` encodes the newline too
                "a.io": {"auth": b64(f"jane:{PASSWORD}\n") + "\n"},
                "b.io": {"username": " bob\n", "password": f"{PASSWORD}\r\n"},
                "c.io": {"registrytoken": "\tbearer-token\n"},
                "d.io": {"auth": b64(" spaced : pw ")},
                "e.io": {"password": "\n", "username": ""},
            }
        ),
        source="imagePullSecret ns/regcred",
    )
    assert parsed["a.io"] == RegistryCredentials("jane", PASSWORD)
    assert parsed["b.io"] == RegistryCredentials("bob", PASSWORD)
    assert parsed["c.io"] == RegistryCredentials(token="bearer-token")
    assert parsed["d.io"] == RegistryCredentials("spaced", "pw")
    assert "e.io" not in parsed  # nothing left once normalised
    assert parsed["b.io"].source == 'imagePullSecret ns/regcred auths["b.io"]'
    with pytest.raises(CredentialsError, match="does not decode"):
        parse_dockerconfigjson(dockerconfig({"a.io": {"auth": b64(" \n:pw")}}))


def test_config_and_environment_values_are_normalised_and_name_their_source(tmp_path: Path) -> None:
    write_secret(tmp_path / "mounted", {"m.io": {"auth": b64("m:pw\n")}})
    config = load_config_text(
        f"""
registries:
  - hostnamePattern: "var.io"
    secret: {{type: Opaque, token: "${{REGISTRY_TOKEN}}"}}
  - hostnamePattern: "literal.io"
    secret: {{type: Opaque, username: " robot ", token: " robot-pw "}}
  - hostnamePattern: "env.io"
    secret: {{type: Opaque, name: regcred, key: TOKEN_FROM_SECRET}}
  - hostnamePattern: "m.io"
    secret: {{type: ImagePullSecret, mountPath: "{tmp_path / "mounted"}"}}
""",
        {"REGISTRY_TOKEN": "var-token\n"},
    )
    store = CredentialStore.from_config(config, environ={"TOKEN_FROM_SECRET": "  env-token\n"})
    assert store.problems == []
    found = {host: store.lookup(host) for host in ("var.io", "literal.io", "env.io", "m.io")}
    assert found == {
        "var.io": RegistryCredentials(token="var-token"),
        "literal.io": RegistryCredentials("robot", "robot-pw"),
        "env.io": RegistryCredentials(token="env-token"),
        "m.io": RegistryCredentials("m", "pw"),
    }
    sources = {host: creds.source for host, creds in found.items() if creds is not None}
    assert sources == {
        "var.io": "registries[0].secret.token",
        "literal.io": "registries[1].secret.token",
        "env.io": "registries[2].secret (Secret regcred, key TOKEN_FROM_SECRET, from the environment)",
        "m.io": f'registries[3].secret.mountPath {tmp_path / "mounted" / ".dockerconfigjson"} auths["m.io"]',
    }


def test_a_token_of_only_whitespace_is_no_token() -> None:
    config = config_of(("e.io", RegistrySecret(type="Opaque", name="s", key="BLANK")))
    with pytest.raises(CredentialsError, match="needs a non-empty token"):
        CredentialStore.from_config(config, environ={"BLANK": " \n"})


def test_image_pull_secret_objects_are_normalised_and_named() -> None:
    for key, document in (
        (".dockerconfigjson", dockerconfig({"r.io": {"username": "u", "password": PASSWORD + "\n"}})),
        (".dockercfg", json.dumps({"r.io": {"auth": b64(f"u:{PASSWORD}\n")}})),
    ):
        secret = {
            "metadata": {"namespace": "team", "name": "regcred"},
            "data": {key: b64(document)},
        }
        [(host, creds)] = credentials_from_secret(secret).items()
        assert (host, creds) == ("r.io", RegistryCredentials("u", PASSWORD))
        assert creds.source.startswith("imagePullSecret team/regcred ")
        assert PASSWORD not in repr(creds)

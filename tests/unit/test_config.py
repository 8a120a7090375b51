"""Config loading: upstream files unchanged, `${VAR}`, every problem reported by key path, no secret leaks."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autorollout.config import (
    MAX_CONFIG_BYTES,
    Config,
    ConfigError,
    RegistryConfig,
    RegistrySecret,
    WebhookConfig,
    load_config,
    load_config_text,
    parse_cron,
    read_config,
)

pytestmark = pytest.mark.unit

TOKEN = "tok-3xT!r4 #not-a-comment *alias: &anchor"

# The "Executing locally" example of upstream's README, verbatim.
UPSTREAM_README_EXAMPLE = """\
cronSchedule: "*/45 * * * * *"
webserver:
  port: 8080
registries:
  - hostnamePattern: "docker.io"
    secret:
      type: ImagePullSecret
      mountPath: "C:/Users/<YourUser>/Desktop/kube-autorollout/docker-io"
  - hostnamePattern: "*.artifactory.example.com"
    secret:
      type: Opaque
      token: ${REGISTRY_TOKEN}
  - hostnamePattern: "ghcr.io"
    secret:
      type: ImagePullSecret
      mountPath: "C:/Users/<YourUser>/Desktop/kube-autorollout/ghcr-io"
tls:
  caCertificatePaths: [ ]
featureFlags:
  enableJfrogArtifactoryFallback: false
  enableKubectlAnnotation: false
"""

# Every key the upstream Helm values can put into the rendered config.
UPSTREAM_CHART_CONFIG = """\
logLevel: debug
cronSchedule: "0 */5 * * * *"
webserver:
  port: 9090
registries:
  - hostnamePattern: "ghcr.io"
    secret:
      type: ImagePullSecret
      name: ghcr-io-registry-creds
      mountPath: /etc/secrets/registries/ghcr.io
  - hostnamePattern: "*.artifactory.example.com"
    secret:
      type: Opaque
      name: jfrog-artifactory-registry-creds
      key: IDENTITY_TOKEN
      username: robot
      token: "${IDENTITY_TOKEN}"
  - hostnamePattern: "another-artifactory.example.com"
    secret:
      name: jfrog-artifactory-registry-creds
      key: IDENTITY_TOKEN
  - hostnamePattern: "quay.io"
    secret:
      type: None
tls:
  caCertificatePaths:
    - /etc/secrets/ca/custom-ca-01.crt
  customCaCertificates:
    enabled: true
    secrets:
      - name: custom-ca-02-secret
        subPath: ca-02.crt
        mountPath: /etc/secrets/ca/custom-ca-02.crt
featureFlags:
  enableJfrogArtifactoryFallback: true
  enableKubectlAnnotation: true
"""


def problems_of(text: str, environ: dict[str, str] | None = None, *, strict: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, environ or {}, strict=strict)
    return info.value.problems


def test_upstream_readme_example_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(UPSTREAM_README_EXAMPLE)
    config = load_config(str(path), {"REGISTRY_TOKEN": TOKEN})

    assert config.cron_schedule == "*/45 * * * * *"
    assert config.webserver.port == 8080
    assert [r.hostname_pattern for r in config.registries] == [
        "docker.io",
        "*.artifactory.example.com",
        "ghcr.io",
    ]
    docker, artifactory, _ = config.registries
    assert docker.secret.type == "ImagePullSecret"
    assert docker.secret.mount_path == "C:/Users/<YourUser>/Desktop/kube-autorollout/docker-io"
    assert artifactory.secret.type == "Opaque"
    assert artifactory.secret.token is not None
    assert artifactory.secret.token.get_secret_value() == TOKEN  # YAML-special characters arrive verbatim
    assert config.tls.ca_certificate_paths == []
    assert not config.feature_flags.enable_jfrog_artifactory_fallback
    assert not config.feature_flags.enable_kubectl_annotation
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)
    assert TOKEN not in config.model_dump_json()


def test_upstream_chart_rendered_config_loads() -> None:
    config = load_config_text(UPSTREAM_CHART_CONFIG, {"IDENTITY_TOKEN": "id-token"})
    assert config.log_level == "debug"
    assert config.cron.has_seconds
    assert config.webserver.port == 9090
    opaque = config.registries[1].secret
    assert (opaque.type, opaque.username, opaque.name, opaque.key) == (
        "Opaque",
        "robot",
        "jfrog-artifactory-registry-creds",
        "IDENTITY_TOKEN",
    )
    # Without `type`, name + key mean an Opaque secret read from the environment.
    assert config.registries[2].secret.type == "Opaque"
    assert config.registries[2].secret.token is None
    assert config.registries[3].secret.type == "None"
    # The chart's customCaCertificates mounts join caCertificatePaths.
    assert config.tls.ca_certificate_paths == [
        "/etc/secrets/ca/custom-ca-01.crt",
        "/etc/secrets/ca/custom-ca-02.crt",
    ]
    assert config.feature_flags.enable_jfrog_artifactory_fallback
    assert config.feature_flags.enable_kubectl_annotation


def test_defaults_without_any_file() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.cron_schedule == "*/45 * * * * *"
    assert config.log_level == "info"
    assert config.webserver.port == 8080
    assert config.registries == []
    assert config.webhook == WebhookConfig()
    assert (config.webhook.host, config.webhook.port) == ("0.0.0.0", 8443)
    assert config.webhook.image_pull_policy == "mutate"
    assert config.webhook.lookup_budget_seconds == 2.0
    assert config.reconciler.namespaces == []
    assert not config.reconciler.all_namespaces
    assert config.reconciler.max_patches_per_second == 5.0
    assert config.reconciler.resync_seconds == 300
    assert config.reconciler.cycle_timeout_seconds == 60
    assert config.reconciler.registry_concurrency == 8
    assert not config.leader_election.enabled
    assert config.leader_election.lease_name == "kube-autorollout"
    assert config.leader_election.lease_duration_seconds == 15
    assert config.leader_election.renew_seconds == 5
    assert config.digest_cache_ttl_seconds == 10


def test_config_file_env_var_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("webserver:\n  port: 1234\n")
    assert load_config(None, {"CONFIG_FILE": str(path)}).webserver.port == 1234
    path.write_text("# only a comment\n")
    assert load_config(str(path), {}) == Config()


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(str(missing), {})
    assert info.value.problems == [f"{missing}: config file not found"]
    with pytest.raises(ConfigError, match="is a directory, not a regular file"):
        load_config(str(tmp_path), {})


def test_our_additions_load_by_their_camel_case_keys() -> None:
    config = load_config_text(
        """
webhook:
  host: 127.0.0.1
  port: 9443
  tlsCertFile: /tls/tls.crt
  tlsKeyFile: /tls/tls.key
  imagePullPolicy: Deny
  lookupBudgetSeconds: 1.5
reconciler:
  namespaces: [team-a, team-b]
  maxPatchesPerSecond: 2
  resyncSeconds: 120
  cycleTimeoutSeconds: 30
  registryConcurrency: 4
leaderElection:
  enabled: true
  leaseName: my-lease
  leaseDurationSeconds: 20
  renewSeconds: 4
digestCacheTtlSeconds: 0
""",
        {},
    )
    assert config.webhook.image_pull_policy == "deny"
    assert config.webhook.tls_cert_file == "/tls/tls.crt"
    assert config.webhook.lookup_budget_seconds == 1.5
    assert config.reconciler.namespaces == ["team-a", "team-b"]
    assert config.reconciler.registry_concurrency == 4
    assert config.leader_election.lease_name == "my-lease"
    assert config.leader_election.lease_duration_seconds == 20
    assert config.digest_cache_ttl_seconds == 0


def test_python_code_builds_models_by_field_name() -> None:
    config = Config(
        cron_schedule="*/5 * * * *",
        registries=[RegistryConfig(hostname_pattern="x.io", secret=RegistrySecret(type="None"))],
        webhook=WebhookConfig(port=0, image_pull_policy="warn"),
    )
    assert config.registries[0].hostname_pattern == "x.io"
    assert config.webhook.port == 0


BAD_FILE = """\
cronSchedule: "61 * * * *"
logLevel: loud
webserver:
  prot: 8080
  port: -1
registries:
  - hostnamePattern: ""
    secret:
      type: Vault
  - hostnamePattern: "a.io"
    secret:
      type: Opaque
  - hostnamePattern: "b.io"
    secret:
      type: ImagePullSecret
  - hostnamePattern: "c.io"
    secret: {type: ImagePullSecret, mountPath: /secrets/shared}
  - hostnamePattern: "d.io"
    secret: {type: ImagePullSecret, mountPath: /secrets/shared/}
  - hostnamePattern: "e.io"
    secret: {type: Opaque, token: "${NOT_SET_TOKEN}"}
  - hostnamePattern: "f.io"
    secret: {type: Opaque, username: u, token: "inline-secret-value", name: s}
webhook:
  imagePullPolicy: allow
  lookupBudgetSeconds: 0
  port: eighty
reconciler:
  maxPatchesPerSecond: -2
featureFlags:
  enableKubectlAnnotation: maybe
"""


def test_every_problem_is_reported_once_with_its_key_path_and_line() -> None:
    problems = problems_of(BAD_FILE, strict=True)
    expected = {
        "cronSchedule": "out of range (line 1)",
        "logLevel": "line 2",
        "webserver.prot": "unknown key; did you mean port?",
        "webserver.port": "greater than or equal to 0",
        "registries[0].hostnamePattern": "must not be empty",
        "registries[0].secret.type": "unknown secret type; expected ImagePullSecret, Opaque or None",
        "registries[1].secret.token": "type Opaque needs a token, or name and key",
        "registries[2].secret.mountPath": "required for type ImagePullSecret",
        "registries[4].secret.mountPath": "also used by registries[3]",
        "registries[5].secret.token": "environment variable NOT_SET_TOKEN is not set (line 21)",
        "webhook.imagePullPolicy": "'mutate', 'warn' or 'deny'",
        "webhook.lookupBudgetSeconds": "greater than 0",
        "webhook.port": "valid integer",
        "reconciler.maxPatchesPerSecond": "greater than 0",
        "featureFlags.enableKubectlAnnotation": "valid boolean",
    }
    for path, fragment in expected.items():
        lines = [p for p in problems if p.startswith(f"{path}: ")]
        assert len(lines) == 1, (path, problems)
        assert fragment in lines[0], (path, lines[0])
    assert len(problems) == len(expected), problems
    numbers = [int(p.rsplit("(line ", 1)[1].rstrip(")")) for p in problems]
    assert numbers == sorted(numbers), "problems are listed in file order"
    assert all("\n" not in p for p in problems)
    assert not any("inline-secret-value" in p or "Vault" in p or "61 *" in p for p in problems)
    # Without strict mode too: the file stops the program, its unknown keys are listed with the rest.
    assert problems_of(BAD_FILE) == problems


def test_missing_environment_variable_names_it_and_its_line() -> None:
    problems = problems_of("webserver:\n  port: ${PORT}\n")
    assert problems == ["webserver.port: environment variable PORT is not set (line 2)"]


def test_substitution_is_typed_like_the_written_value_and_skips_comments_and_escapes() -> None:
    config = load_config_text(
        """
# ${IN_A_COMMENT} is not needed
webserver:
  port: ${PORT}
featureFlags:
  enableKubectlAnnotation: ${FLAG}
webhook:
  host: "${HOST}"
  tlsCertFile: /certs/$${NOT_A_VAR}/tls.crt
  tlsKeyFile: ${DIR}/tls.key
""",
        {"PORT": "9999", "FLAG": "true", "HOST": "::1", "DIR": "/x"},
    )
    assert config.webserver.port == 9999
    assert config.feature_flags.enable_kubectl_annotation is True
    assert config.webhook.host == "::1"
    assert config.webhook.tls_cert_file == "/certs/${NOT_A_VAR}/tls.crt"
    assert config.webhook.tls_key_file == "/x/tls.key"


def test_yaml_syntax_error_is_one_problem_with_line_and_column_and_no_text() -> None:
    problems = problems_of("registries:\n  - hostnamePattern: a\n    secret: {token: *s3cr3t-token}\n")
    assert len(problems) == 1
    assert "line 3, column" in problems[0]
    assert "s3cr3t" not in problems[0]
    [problem] = problems_of("webserver:\n  port: 1\n bad: indentation\n")
    assert problem.startswith("(yaml): line 3, column 2:")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "(top level): must be a mapping of keys to values, not a list"),
        ("just text\n", "(top level): must be a mapping of keys to values, not a string"),
        ("webserver:\n  port: 1\nwebserver:\n  port: 2\n", "webserver: duplicate key (line 3)"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
        ("cronSchedule: 2024-13-01\n", "cannot be read"),
        ("registries: {hostnamePattern: x}\n", "registries: Input should be a valid list"),
        (
            "registries:\n  - secret: {type: None}\n",
            "registries[0].hostnamePattern: required key is missing (line 2)",
        ),
        (
            "registries:\n  - hostnamePattern: x\n    secret: {name: only-a-name}\n",
            "registries[0].secret.type: required",
        ),
        ("leaderElection: {leaseDurationSeconds: 5, renewSeconds: 5}\n", "renewSeconds must be shorter"),
        ("reconciler: {namespaces: [a], allNamespaces: true}\n", "not both"),
        ("reconciler: {namespaces: [Not_A_Namespace]}\n", "reconciler.namespaces[0]:"),
        ("reconciler: {registryConcurrency: 0}\n", "reconciler.registryConcurrency: "),
        ("webhook: {tlsCertFile: /a}\n", "tlsCertFile and tlsKeyFile must be given together"),
        ("webhook: {port: 70000}\n", "webhook.port: Input should be less than or equal to 65535"),
        ("digestCacheTtlSeconds: -1\n", "digestCacheTtlSeconds: "),
    ],
)
def test_single_problems(text: str, fragment: str) -> None:
    problems = problems_of(text)
    assert any(fragment in p for p in problems), problems


def test_token_values_never_appear_in_problems() -> None:
    secret = "SuperSecretValue123"
    texts = [
        f"registries:\n  - hostnamePattern: x\n    secret: {{type: Opaque, token: [{secret}]}}\n",
        f"registries:\n  - hostnamePattern: x\n    secret: {{type: Opaque, token: {{v: {secret}}}}}\n",
        f"registries:\n  - hostnamePattern: x\n    secret: {{type: Opaque, tokn: {secret}}}\n",
        f"registries:\n  - hostnamePattern: x\n    secret: {{type: Opaque, token: !custom {secret}}}\n",
    ]
    for text in texts:
        with pytest.raises(ConfigError) as info:
            load_config_text(text, {})
        assert info.value.problems
        assert secret not in str(info.value)
        assert secret not in repr(info.value)
        assert info.value.__cause__ is None


def test_missing_ca_certificate_file_is_a_problem(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"tls:\n  caCertificatePaths: [{ca}, {tmp_path / 'missing.crt'}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    assert info.value.problems == [f"tls.caCertificatePaths[1]: file not found: {tmp_path / 'missing.crt'}"]
    # A directory stands for every file in it (a mounted Secret or ConfigMap), as the README says.
    path.write_text(f"tls:\n  caCertificatePaths: [{tmp_path}]\n")
    assert load_config(str(path), {}).tls.ca_certificate_paths == [str(tmp_path)]


# --- unknown keys, strict mode ----------------------------------------------------------------

UNKNOWN_KEYS = """\
cronSchedule: "*/5 * * * *"
webserver:
  prot: 9090
  port: 9091
registries:
  - hostnamePattern: a.io
    secret: {type: Opaque, tokn: NotShownAnywhere, token: t}
    mirror: b.io
cron_schedule: x
newUpstreamFeature: {enabled: true}
"""


def test_unknown_keys_are_warnings_with_their_path_line_and_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(UNKNOWN_KEYS)
    loaded = read_config(str(path), {})
    assert loaded.config.webserver.port == 9091
    assert loaded.config.cron_schedule == "*/5 * * * *"
    assert loaded.config.registries[0].secret.token is not None
    assert list(loaded.warnings) == [
        "webserver.prot: unknown key; did you mean port? (line 3)",
        "registries[0].secret.tokn: unknown key; did you mean token? (line 7)",
        "registries[0].mirror: unknown key; expected one of: hostnamePattern, secret (line 8)",
        "cron_schedule: unknown key; did you mean cronSchedule? (line 9)",
        "newUpstreamFeature: unknown key; expected one of: cronSchedule, digestCacheTtlSeconds, events, "
        "featureFlags, leaderElection, logLevel, lookupTimeoutSeconds, notifications, "
        "reconciler, registries, rolloutPolicy, tls, webhook, webserver (line 10)",
    ]
    assert not any("NotShownAnywhere" in w for w in loaded.warnings)
    assert load_config_text(UNKNOWN_KEYS, {}) == loaded.config


def test_load_config_logs_unknown_keys_as_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("webserver: {prot: 1}\n")
    with caplog.at_level("WARNING", logger="kube_autorollout.config"):
        assert load_config(str(path), {}) == Config()
    assert [r.getMessage() for r in caplog.records] == [
        "webserver.prot: unknown key; did you mean port? (line 1)"
    ]


def test_strict_mode_makes_each_unknown_key_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(UNKNOWN_KEYS)
    for strict, environ in ((True, {}), (None, {"KUBE_AUTOROLLOUT_STRICT_CONFIG": "true"})):
        with pytest.raises(ConfigError) as info:
            read_config(str(path), environ, strict=strict)
        assert [p.split(":", 1)[0] for p in info.value.problems] == [
            "webserver.prot",
            "registries[0].secret.tokn",
            "registries[0].mirror",
            "cron_schedule",
            "newUpstreamFeature",
        ]
    assert read_config(str(path), {"KUBE_AUTOROLLOUT_STRICT_CONFIG": "0"}).warnings
    with pytest.raises(ConfigError, match="KUBE_AUTOROLLOUT_STRICT_CONFIG: expected true or false"):
        read_config(str(path), {"KUBE_AUTOROLLOUT_STRICT_CONFIG": "maybe"})
    # A known key only ever gives warnings for its unknown children, never for itself.
    assert problems_of("tls:\n  caCertificatePath: []\n", strict=True) == [
        "tls.caCertificatePath: unknown key; did you mean caCertificatePaths? (line 2)"
    ]


# --- values are never echoed ---------------------------------------------------------------------

SECRET_VALUE = "Vq7-Leak!Canary"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("registries:\n  - hostnamePattern: x\n    secret: {type: '${V}'}\n", "registries[0].secret.type"),
        ("cronSchedule: '${V}'\n", "cronSchedule"),
        ("cronSchedule: '${V} * * * *'\n", "cronSchedule"),
        ("cronSchedule: '1-99${V} * * * *'\n", "cronSchedule"),
        ("logLevel: '${V}'\n", "logLevel"),
        ("webserver: {port: '${V}'}\n", "webserver.port"),
        ("webhook: {imagePullPolicy: '${V}'}\n", "webhook.imagePullPolicy"),
        ("webhook: {lookupBudgetSeconds: '${V}'}\n", "webhook.lookupBudgetSeconds"),
        ("reconciler: {namespaces: ['${V}']}\n", "reconciler.namespaces[0]"),
        ("featureFlags: {enableKubectlAnnotation: '${V}'}\n", "featureFlags.enableKubectlAnnotation"),
        (
            "registries:\n  - hostnamePattern: x\n    secret: {type: Opaque, token: ' '}\n  - ${V}\n",
            "registries[1]",
        ),
        (
            "leaderElection: {leaseName: '${V}', leaseDurationSeconds: '${V}'}\n",
            "leaderElection.leaseDurationSeconds",
        ),
    ],
)
def test_no_problem_quotes_a_value_from_the_environment(text: str, key: str) -> None:
    for value in (SECRET_VALUE, "S3cr3t_Value", "0 0 30 2 *"):
        problems = problems_of(text, {"V": value})
        assert any(p.startswith(f"{key}: ") for p in problems), problems
        assert not any(value in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    [
        "registries:\n  - hostnamePattern: x\n    secret: {type: Vault-Canary-1}\n",
        "cronSchedule: 'Canary-1 * * * *'\n",
        "cronSchedule: '*/Canary-1 * * * *'\n",
        "reconciler: {namespaces: [Canary-1]}\n",
        "logLevel: Canary-1\n",
        "webhook: {imagePullPolicy: Canary-1}\n",
        "registries:\n  - hostnamePattern: x\n    secret: {type: Opaque, username: Canary-1, token: [C]}\n",
    ],
)
def test_no_problem_quotes_a_value_written_in_the_file(text: str) -> None:
    problems = problems_of(text)
    assert problems
    assert not any("Canary" in p for p in problems), problems


def test_a_ca_path_from_the_environment_is_not_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("tls:\n  caCertificatePaths: ['${CA_DIR}/ca.crt', /nonexistent/literal.crt]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {"CA_DIR": "/secret-dir-Canary"})
    assert info.value.problems == [
        "tls.caCertificatePaths[0]: file not found",
        "tls.caCertificatePaths[1]: file not found: /nonexistent/literal.crt",
    ]


# --- reading the file ------------------------------------------------------------------------------


def test_config_file_through_symlinks_as_kubernetes_mounts_a_configmap(tmp_path: Path) -> None:
    # <mount>/config.yaml -> ..data/config.yaml, ..data -> ..2026_01_01_00_00_00.1/
    version = tmp_path / "..2026_01_01_00_00_00.1"
    version.mkdir()
    (version / "config.yaml").write_text("webserver: {port: 4242}\n")
    (tmp_path / "..data").symlink_to(version.name)
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    assert load_config(str(tmp_path / "config.yaml"), {}).webserver.port == 4242


def test_config_file_size_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (MAX_CONFIG_BYTES - 3) + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(str(path), {}) == Config()
    path.write_text("# " + "x" * (MAX_CONFIG_BYTES - 2) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {})
    assert info.value.problems == [f"{path}: config file is larger than the limit of 1,048,576 bytes (1 MiB)"]


def test_non_regular_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.yaml"
    link.symlink_to("/dev/zero")
    for path, kind in ((fifo, "a FIFO"), ("/dev/zero", "a character device"), (link, "a character device")):
        with pytest.raises(ConfigError) as info:
            load_config(str(path), {})
        assert info.value.problems == [f"{path}: is {kind}, not a regular file; give a config file"]
    (tmp_path / "dangling.yaml").symlink_to("nowhere.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "dangling.yaml"), {})


# --- cron ---------------------------------------------------------------------------------------


def test_six_field_cron_has_seconds_first() -> None:
    spec = parse_cron("*/45 * * * * *")
    assert spec.has_seconds
    start = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert spec.next_after(start) == datetime(2025, 1, 1, 12, 0, 45, tzinfo=UTC)
    assert spec.next_after(datetime(2025, 1, 1, 12, 0, 45, tzinfo=UTC)) == datetime(
        2025, 1, 1, 12, 1, 0, tzinfo=UTC
    )
    assert parse_cron("30 0 6 * * *").next_after(start) == datetime(2025, 1, 2, 6, 0, 30, tzinfo=UTC)


def test_five_field_cron_and_macros() -> None:
    spec = parse_cron("*/5 * * * *")
    assert not spec.has_seconds
    start = datetime(2025, 1, 1, 12, 1, 0, tzinfo=UTC)
    assert spec.next_after(start) == datetime(2025, 1, 1, 12, 5, 0, tzinfo=UTC)
    assert parse_cron("@hourly").next_after(start) == datetime(2025, 1, 1, 13, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "empty"),
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("61 * * * *", "out of range"),
        ("*/0 * * * *", "step"),
        ("a b c d e", "invalid cron expression"),
        ("0 0 30 2 *", "never fires"),
        ("* * * * * 8", "out of range"),
    ],
)
def test_invalid_cron(expression: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="cron") as info:
        parse_cron(expression)
    assert fragment in str(info.value)


def test_documented_configuration_example_loads() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = page.split("\n## The file\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = load_config_text(example, {"REGISTRY_TOKEN": "t"})
    assert config == Config(
        registries=config.registries,  # the only non-default part of the example
        webserver=config.webserver,
    )
    assert [r.secret.type for r in config.registries] == ["ImagePullSecret", "Opaque", "None"]


_yaml_pieces = st.sampled_from(
    [
        *["cronSchedule:", "registries:", "secret:", "type:", "token:", "mountPath:", "hostnamePattern:"],
        *["webhook:", "port:", "tls:", "caCertificatePaths:", "Opaque", "ImagePullSecret", "${X}", "$${Y}"],
        *["- ", "  ", "\n", "[", "]", "{", "}", ":", "&a ", "*a", "<<: ", "? ", "'", '"', "#", "\t", "\x00"],
        *["!!int", "!!timestamp", "!!binary", "!!python/object", "2024-13-01", "1e400", "-1", "null", "true"],
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=40), st.lists(_yaml_pieces, max_size=20).map("".join)))
def test_any_text_loads_or_gives_one_line_problems(text: str) -> None:
    problems: list[str] = []
    try:
        load_config_text(text, {"X": "1"})
    except ConfigError as exc:
        problems = exc.problems or ["<ConfigError without problems>"]
    assert all(problem and "\n" not in problem and "<ConfigError" not in problem for problem in problems)

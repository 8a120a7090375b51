"""One admission review end to end: parse, plan, resolve digests within the budget, answer.

The registry resolver, the credential store and the pull secret reader are passed in (the
protocols below), so the webhook shares the reconciler's digest cache and needs no Kubernetes API
for workloads that name no imagePullSecrets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Protocol

from autorollout.credentials import RegistryCredentials
from autorollout.metrics import ADMISSION_REQUESTS
from autorollout.registry.errors import (
    CredentialBackoffError,
    ForbiddenError,
    InvalidCredentialsError,
    LookupTimeoutError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    RegistryTlsError,
    UnauthorizedError,
    UnreachableError,
)
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import Lookup, LookupRefusedError
from webhook.messages import warning
from webhook.mutation import AdmissionPlan, Decision, decide, plan_admission
from webhook.policy import PullPolicyMode, enforce
from webhook.review import AdmissionRequest, ReviewError, allowed_response, denied_response, parse_review

log = logging.getLogger("kube_autorollout.webhook")

INTERNAL_ERROR_WARNING: Final = warning("internal error, admitted unchanged (see the webhook's log)")
_MIN_LOOKUP_SECONDS: Final = 0.05
DEFAULT_MAX_IMAGES: Final = 100

PullSecrets = Sequence[Mapping[str, RegistryCredentials]]


class DigestSource(Protocol):
    """What the webhook needs of `DigestResolver`."""

    async def resolve_many(
        self,
        lookups: Iterable[Lookup],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a budget for results, as DigestResolver's
        platforms: bool = False,
    ) -> Mapping[Lookup, ManifestDigest | RegistryError]: ...


class CredentialSource(Protocol):
    """What the webhook needs of `CredentialStore`."""

    def lookup(self, registry: str, pull_secrets: PullSecrets = ()) -> RegistryCredentials | None: ...


class PullSecretSource(Protocol):
    """What the webhook needs of the imagePullSecrets reader (cached, logs what it cannot read)."""

    async def read(self, namespace: str, names: Sequence[str]) -> list[dict[str, RegistryCredentials]]: ...


_REASONS: Final[tuple[tuple[type[RegistryError], str], ...]] = (
    (NotFoundError, "tag not found"),
    (UnauthorizedError, "unauthorized"),
    (ForbiddenError, "access denied"),
    (CredentialBackoffError, "credentials rejected recently"),
    (InvalidCredentialsError, "credentials cannot be sent in an HTTP header"),
    (RateLimitedError, "rate limited"),
    (UnreachableError, "registry unreachable"),
    (RegistryTlsError, "registry TLS error"),
    (LookupRefusedError, "webhook busy, too many lookups in flight"),
)


def failure_reason(error: RegistryError, budget: float) -> str:
    """A few words on why a lookup failed, for a warning line."""
    if isinstance(error, LookupTimeoutError):
        return f"timed out, {budget:g}s budget"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "bad registry response"


class AdmissionReviewer:
    """Answers AdmissionReview bodies for opted-in workloads (see `webhook.mutation`)."""

    def __init__(
        self,
        resolver: DigestSource,
        credentials: CredentialSource,
        *,
        mode: PullPolicyMode = PullPolicyMode.MUTATE,
        lookup_budget: float = 2.0,
        pull_secrets: PullSecretSource | None = None,
        max_images: int = DEFAULT_MAX_IMAGES,
    ) -> None:
        self.resolver = resolver
        self.credentials = credentials
        self.mode = mode
        self.lookup_budget = lookup_budget
        self.pull_secrets = pull_secrets
        self.max_images = max(0, max_images)
        self._outcomes = {
            name: ADMISSION_REQUESTS.labels(name) for name in ("unchanged", "patched", "denied")
        }
        self._internal_errors = ADMISSION_REQUESTS.labels("error")

    async def review(self, body: bytes) -> bytes:
        """The response body for a review body; raises ReviewError when the body is malformed."""
        # The budget runs from arrival: parsing a large review is part of what the API server waits for.
        deadline = time.monotonic() + self.lookup_budget
        request = parse_review(body)
        try:
            return await self._answer(request, deadline)
        except ReviewError:
            raise
        except Exception:
            # A bug must not block applies: admit as failurePolicy Ignore would, and say so.
            log.exception("admission failed", extra={"fields": _subject(request)})
            self._internal_errors.inc()
            return allowed_response(request.uid, warnings=[INTERNAL_ERROR_WARNING])

    async def _answer(self, request: AdmissionRequest, deadline: float) -> bytes:
        plan = plan_admission(request)
        if plan is None:
            self._outcomes["unchanged"].inc()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("admission not ours", extra={"fields": _subject(request)})
            return allowed_response(request.uid)
        warnings: list[str] = []
        digests: dict[str, str] = {}
        failures: dict[str, str] = {}
        policy = enforce(plan.containers, self.mode)  # once per review: a denial needs no lookups
        if policy.denial is None:
            warnings = await self._resolve(request, plan, digests, failures, deadline)
        decision = decide(plan, self.mode, digests, failures, policy=policy)
        self._log(request, decision, digests)
        if decision.denial is not None:
            self._outcomes["denied"].inc()
            return denied_response(request.uid, decision.denial, decision.warnings)
        self._outcomes["patched" if decision.operations else "unchanged"].inc()
        return allowed_response(request.uid, decision.operations, warnings + decision.warnings)

    async def _resolve(
        self,
        request: AdmissionRequest,
        plan: AdmissionPlan,
        digests: dict[str, str],
        failures: dict[str, str],
        deadline: float,
    ) -> list[str]:
        """Fill `digests`/`failures` per container name; returns warnings about pull secrets."""
        containers = plan.lookups
        if not containers:
            return []
        warnings: list[str] = []
        secrets: PullSecrets = ()
        if plan.pull_secret_names:
            secrets, warnings = await self._read_pull_secrets(request.namespace, plan.pull_secret_names)
        by_container: dict[str, Lookup] = {}
        unique: set[Lookup] = set()
        for container in containers:
            ref = container.reference
            assert ref is not None  # plan.lookups has valid references only
            lookup = Lookup(ref, self.credentials.lookup(ref.registry, secrets))
            # What one review may start is bounded: beyond it, admitted without a baseline.
            if lookup not in unique and len(unique) >= self.max_images:
                failures[container.name] = f"over {self.max_images} images in one request, not looked up"
                continue
            unique.add(lookup)
            by_container[container.name] = lookup
        timeout = max(_MIN_LOOKUP_SECONDS, deadline - time.monotonic())
        results = await self.resolver.resolve_many(unique, timeout=timeout)
        for name, lookup in by_container.items():
            result = results.get(lookup)
            if isinstance(result, ManifestDigest):
                digests[name] = result.digest
            elif isinstance(result, RegistryError):
                failures[name] = failure_reason(result, self.lookup_budget)
            else:
                failures[name] = "not resolved"
        return warnings

    async def _read_pull_secrets(self, namespace: str, names: Sequence[str]) -> tuple[PullSecrets, list[str]]:
        if self.pull_secrets is None:
            return (), [
                warning("imagePullSecrets not read (no Kubernetes API), using configured credentials")
            ]
        try:
            # Half the budget at most, so the registry lookups keep the rest.
            found = await asyncio.wait_for(
                self.pull_secrets.read(namespace, names), timeout=self.lookup_budget / 2
            )
        except TimeoutError:
            return (), [warning("imagePullSecrets not read in time; using configured credentials")]
        except Exception as exc:
            # The reader is injected and talks to the API: nothing it raises may fail an admission.
            log.warning("imagePullSecrets not read: %s", exc, extra={"fields": {"namespace": namespace}})
            return (), [warning("imagePullSecrets not read; using configured credentials")]
        if len(found) < len(names):
            missing = len(names) - len(found)
            return found, [warning(f"{missing} of {len(names)} imagePullSecrets unreadable or empty")]
        return found, []

    def _log(self, request: AdmissionRequest, decision: Decision, digests: Mapping[str, str]) -> None:
        if not (decision.denial or decision.warnings or log.isEnabledFor(logging.DEBUG)):
            return
        outcome = "denied" if decision.denial else ("patched" if decision.operations else "unchanged")
        fields = _subject(request) | {
            "outcome": outcome,
            "operations": len(decision.operations),
            "digests": dict(digests),
            "warnings": decision.warnings,
        }
        if decision.denial:
            fields["denial"] = decision.denial
        # Denials and warnings are worth an operator's attention; routine records are for debugging.
        level = logging.INFO if decision.denial or decision.warnings else logging.DEBUG
        log.log(level, "admission %s", outcome, extra={"fields": fields})


def _subject(request: AdmissionRequest) -> dict[str, object]:
    return {
        "uid": request.uid,
        "kind": request.kind,
        "namespace": request.namespace,
        "name": request.name,
        "operation": request.operation,
        "dry_run": request.dry_run,
    }

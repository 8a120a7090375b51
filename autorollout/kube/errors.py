"""Errors of the Kubernetes API boundary."""

from __future__ import annotations

from autorollout.errors import AutorolloutError


class KubeError(AutorolloutError):
    """Base of every error raised while talking to the Kubernetes API."""


class KubeConfigError(KubeError):
    """No usable cluster connection: no in-cluster environment and no readable kubeconfig."""


class KubeUnreachableError(KubeError):
    """The API server could not be reached (connection refused, timeout, TLS failure)."""


class KubeApiError(KubeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class KubeNotFoundError(KubeApiError):
    """404: the object or collection does not exist."""


class ConflictError(KubeApiError):
    """409: stale resourceVersion or an object that already exists."""


class InvalidError(KubeApiError):
    """422: includes a JSON patch whose `test` operation failed."""


class GoneError(KubeApiError):
    """410: the resourceVersion of a watch or list is too old; relist."""


class TooManyRequestsError(KubeApiError):
    """429: the API server throttled us; `retry_after` says for how long."""


_BY_STATUS: dict[int, type[KubeApiError]] = {
    404: KubeNotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
    429: TooManyRequestsError,
}


def api_error(status: int, reason: str, message: str, retry_after: float | None = None) -> KubeApiError:
    """The most specific error class for an HTTP status."""
    return _BY_STATUS.get(status, KubeApiError)(status, reason, message, retry_after)

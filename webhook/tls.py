"""The serving certificate, reloaded in place when its files change.

cert-manager and the chart rotate the mounted Secret by swapping files. The new pair is first
loaded into a scratch context (so a half-written or mismatched pair is never used), then into the
live `ssl.SSLContext` the server listens with: new handshakes get the new certificate, open
connections are not touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Final

from autorollout.errors import AutorolloutError

log = logging.getLogger("kube_autorollout.webhook")

DEFAULT_POLL_SECONDS: Final = 5.0


class ServingCertificateError(AutorolloutError):
    """The certificate or key file is missing, unreadable, or the pair does not match."""


@dataclass(frozen=True, slots=True)
class _FileState:
    cert: tuple[int, int, int] | None
    key: tuple[int, int, int] | None


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows the ..data symlinks of a Secret volume
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _new_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(["http/1.1"])
    return context


def _load(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    for path in (cert_file, key_file):
        if not os.path.isfile(path):
            raise ServingCertificateError(f"{path}: no such file")
    try:
        context.load_cert_chain(cert_file, key_file)
    except OSError as exc:  # ssl.SSLError is an OSError; so is a file removed since the check
        raise ServingCertificateError(
            f"cannot load the serving certificate {cert_file} with key {key_file}: {exc}"
        ) from None


class ServingCertificate:
    """A TLS 1.2+ server context for a certificate/key file pair that follows file changes."""

    def __init__(self, cert_file: str, key_file: str, *, poll_seconds: float = DEFAULT_POLL_SECONDS) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.poll_seconds = poll_seconds
        self.reloads = 0
        self.last_error: str | None = None
        self._state = self._files()
        self.context = _new_context()
        _load(self.context, cert_file, key_file)

    def _files(self) -> _FileState:
        return _FileState(_stat(self.cert_file), _stat(self.key_file))

    def reload_if_changed(self) -> bool:
        """Load the pair again if either file changed; True when the live context was updated.

        A pair that does not load is logged and retried at the next change; the old one stays.
        """
        state = self._files()
        if state == self._state:
            return False
        self._state = state
        try:
            _load(_new_context(), self.cert_file, self.key_file)
        except ServingCertificateError as exc:
            if str(exc) != self.last_error:
                log.warning("serving certificate not reloaded: %s", exc)
            self.last_error = str(exc)
            return False
        try:
            _load(self.context, self.cert_file, self.key_file)
        except ServingCertificateError as exc:
            # The files changed again between the two loads: load the settled pair next poll.
            log.warning("serving certificate changed while reloading: %s", exc)
            self._state = _FileState(None, None)
            return False
        if self._files() != state:
            self._state = _FileState(None, None)
        self.reloads += 1
        self.last_error = None
        log.info("serving certificate reloaded", extra={"fields": {"cert_file": self.cert_file}})
        return True

    async def watch(self) -> None:
        """Poll the files forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            self.reload_if_changed()

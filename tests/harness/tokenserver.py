"""A tiny registry token service (Docker token auth spec) for `docker-registry` with `auth: token`.

It checks Basic credentials, issues ES256 JWTs whose header carries the signing certificate (`x5c`,
which CNCF distribution verifies against its `rootcertbundle`), grants the requested actions to known
users (anonymous callers get a token with no access), and records every request so tests can count
token fetches.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from certs.mint import mint_ca, mint_serving_cert

ISSUER = "kube-autorollout-test-issuer"
SERVICE = "kube-autorollout-test-registry"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class TokenRequest:
    """One request the token service answered: who asked (None: anonymous), for what, with which status."""

    username: str | None
    scopes: tuple[str, ...]
    service: str
    status: int


@dataclass
class TokenServer:
    """Threaded token service on 127.0.0.1; `realm` is its token URL."""

    workdir: Path
    users: dict[str, str]
    expires_in: int = 300
    anonymous_pull: bool = False
    #: Appended to every token it answers with (a broken token service: "\n", a non-ASCII character).
    token_suffix: str = ""
    requests: list[TokenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca_pem, ca_key_pem = mint_ca("token-signing CA")
        cert_pem, key_pem = mint_serving_cert(ca_pem, ca_key_pem, ["token-signer"])
        self.root_bundle = self.workdir / "token-root.crt"
        self.root_bundle.write_bytes(ca_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._key = key
        leaf = x509.load_pem_x509_certificate(cert_pem)
        self._x5c = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="tokenserver", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def issued_count(self, scope: str | None = None, *, username: str | None = None) -> int:
        """How many tokens were issued (status 200), optionally only those asked for exactly `scope`."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.status == 200
                and (scope is None or scope in r.scopes)
                and (username is None or r.username == username)
            )

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def issue(self, username: str | None, scopes: list[str], service: str) -> str:
        """A signed JWT granting `username` the requested actions (none when anonymous)."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = actions.split(",") if username is not None else []
            if username is None and self.anonymous_pull and "pull" in actions.split(","):
                granted = ["pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": self._x5c}
        claims = {
            "iss": ISSUER,
            "sub": username or "",
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the recorded requests are what tests look at."""

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="token"')
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                scopes = query.get("scope", [])
                service = query.get("service", [""])[0]
                if url.path != "/token":
                    self._reply(404, {"error": "not found"})
                    return
                username = self._check_login()
                if username is False:
                    server._record(TokenRequest(None, tuple(scopes), service, 401))
                    self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                    return
                user = username if isinstance(username, str) else None
                token = server.issue(user, scopes, service) + server.token_suffix
                server._record(TokenRequest(user, tuple(scopes), service, 200))
                self._reply(
                    200,
                    {
                        "token": token,
                        "access_token": token,
                        "expires_in": server.expires_in,
                        "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                )

            def _check_login(self) -> str | bool | None:
                """The user name, None for anonymous, False for wrong credentials."""
                header = self.headers.get("Authorization")
                if header is None:
                    return None
                scheme, _, value = header.partition(" ")
                if scheme.lower() != "basic":
                    return False
                try:
                    username, _, password = base64.b64decode(value).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    return False
                if server.users.get(username) != password:
                    return False
                return username

        return Handler

"""Registry access, one module each: `manifests` (media types, digests, index parsing: pure),
`errors` (the one hierarchy of registry failures), `challenges` (WWW-Authenticate parsing: pure),
`tokens` (token answers and the token cache), `auth` (the anonymous -> challenge -> token flow and
credential lockout), `authorization` (header values, redaction), `wire` (transport errors, capped
bodies, URLs a peer hands us), `retry` (the retry policy), `trust` (CA certificates), `pools`
(connections per host), `client` (HEAD/GET of manifests over httpx), `cache` and `resolver` (many
references at once, with the shared digest cache).

Nothing is imported here, so a pure module that needs `manifests` does not load httpx.
"""

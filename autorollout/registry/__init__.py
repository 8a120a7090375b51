"""Registry access, one module each: `manifests` (media types, digests, index parsing: pure),
`errors` (the one hierarchy of registry failures), `challenges` (WWW-Authenticate parsing),
`auth` (the anonymous -> challenge -> token flow), `client` (HEAD/GET of manifests over httpx),
`resolver` (many references at once, with the shared digest cache).

Nothing is imported here, so a pure module that needs `manifests` does not load httpx.
"""

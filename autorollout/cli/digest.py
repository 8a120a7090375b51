"""`kube-autorollout digest IMAGE [--platforms]`: resolve one image reference at its registry with the
configured credentials and CA files, and print the digest (the one the kubelet records for a pull).

Whatever it prints may come from the registry, so every line goes through `terminal_safe`; the lookup
ends within `lookupTimeoutSeconds` whatever the registry does."""

from __future__ import annotations

import argparse
import asyncio
import sys

from autorollout.cli.outcome import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, print_error
from autorollout.cli.wiring import registry_client
from autorollout.config import load_config
from autorollout.credentials import CredentialStore, RegistryCredentials
from autorollout.errors import ConfigError
from autorollout.references import ImageReference, InvalidReferenceError, parse_image_reference
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import RegistryConfigError, RegistryError
from autorollout.registry.manifests import ManifestDigest
from autorollout.terminal import terminal_safe

# A platform is "os/architecture/variant"; more than this is not one, and is cut.
_PLATFORM_WIDTH = 100


def format_result(result: ManifestDigest, *, platforms: bool) -> str:
    """The digest; with `platforms`, then one "digest  os/arch[/variant]" line per index entry."""
    lines = [terminal_safe(result.digest)]
    if platforms:
        lines += [
            f"{terminal_safe(entry.digest)}  {terminal_safe(entry.platform, _PLATFORM_WIDTH)}"
            for entry in result.platforms
        ]
    return "\n".join(lines) + "\n"


async def _resolve(
    client: RegistryClient, ref: ImageReference, credentials: RegistryCredentials | None, platforms: bool
) -> ManifestDigest:
    try:
        return await client.resolve(ref, credentials, platforms=platforms)
    finally:
        await client.aclose()


def command(args: argparse.Namespace) -> int:
    """Print the digest `args.image` points to; 1 on a registry failure, 2 on bad input or config."""
    try:
        config = load_config(args.config, strict=args.strict_config or None)
        ref = parse_image_reference(args.image)
    except ConfigError as exc:
        for problem in exc.problems:
            print_error(problem)
        return EXIT_USAGE
    except InvalidReferenceError as exc:
        print_error(str(exc))
        return EXIT_USAGE

    store = CredentialStore.from_config(config, strict=False)
    credentials = store.lookup(ref.registry)
    if credentials is None:
        # Only worth mentioning when it may be why this lookup goes out anonymously.
        for problem in store.problems:
            print_error(f"warning: {problem}")
    try:
        client = registry_client(config)
    except RegistryConfigError as exc:
        print_error(str(exc))
        return EXIT_USAGE

    platforms = bool(getattr(args, "platforms", False))
    try:
        result = asyncio.run(_resolve(client, ref, credentials, platforms))
    except RegistryError as exc:
        print_error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    sys.stdout.write(format_result(result, platforms=platforms))
    if platforms and not result.is_index:
        print_error(f"{ref} is a single-platform manifest ({result.media_type})")
    return EXIT_OK

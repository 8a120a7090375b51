"""`kube-autorollout certs`: mint the webhook's certificates and write its webhook configuration."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from autorollout.cli.outcome import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from autorollout.errors import AutorolloutError, UsageError

T = TypeVar("T")


class ClusterWriteError(AutorolloutError):
    """Writing to the cluster failed; reported with exit code 1."""


class FileWriteError(AutorolloutError):
    """Writing the files failed; reported with exit code 1."""


def _split_pair(text: str, what: str) -> tuple[str, str]:
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise UsageError(f"{what} must be NAMESPACE/NAME, got {text!r}")
    return namespace, name


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise UsageError(f"--namespace-label must be KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def _read_ca(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read CA file {path}: {exc.strerror or exc}") from None


def _with_kube(args: argparse.Namespace, action: Callable[[Any], Awaitable[T]]) -> T:
    from autorollout.kube import KubeClient  # noqa: PLC0415 - only the subcommands that write need it
    from certs.cabundle import WebhookConfigError  # noqa: PLC0415

    async def run() -> T:
        async with KubeClient.from_kubeconfig(args.kubeconfig) as kube:
            return await action(kube)

    try:
        return asyncio.run(run())
    except WebhookConfigError as exc:
        raise ClusterWriteError(str(exc)) from None


def _generate(args: argparse.Namespace) -> int:
    from certs.mint import write_bundle  # noqa: PLC0415
    from certs.secret import tls_secret, write_tls_secret  # noqa: PLC0415

    if not args.dns and not args.ip:
        raise UsageError("give at least one --dns NAME or --ip ADDRESS for the serving certificate")
    target = _split_pair(args.secret, "--secret") if args.secret else None
    try:
        paths = write_bundle(args.out, args.dns, args.ip)
    except OSError as exc:
        raise FileWriteError(f"cannot write certificates into {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {paths.ca_cert}, {paths.tls_cert}, {paths.tls_key}")
    if target is not None:
        secret = tls_secret(
            target[0],
            target[1],
            ca_pem=paths.ca_cert.read_bytes(),
            cert_pem=paths.tls_cert.read_bytes(),
            key_pem=paths.tls_key.read_bytes(),
        )
        _with_kube(args, lambda kube: write_tls_secret(kube, secret))
        print(f"wrote Secret {target[0]}/{target[1]} (kubernetes.io/tls)")
    return EXIT_OK


def _webhook_config(args: argparse.Namespace) -> int:
    import yaml  # noqa: PLC0415

    from certs.cabundle import (  # noqa: PLC0415
        ServiceTarget,
        apply_webhook_configuration,
        namespace_selector_for,
        render_webhook_configuration,
    )

    service = None
    if args.service:
        namespace, name = _split_pair(args.service, "--service")
        service = ServiceTarget(namespace, name, port=args.service_port)
    configuration = render_webhook_configuration(
        args.name,
        url=args.url,
        service=service,
        ca_pem=_read_ca(args.ca_file) if args.ca_file else None,
        namespace_selector=namespace_selector_for(args.namespace, _labels(args.namespace_label)),
        timeout_seconds=args.timeout_seconds,
    )
    if not args.apply:
        sys.stdout.write(yaml.safe_dump(configuration, sort_keys=False))
        return EXIT_OK
    _with_kube(args, lambda kube: apply_webhook_configuration(kube, configuration))
    print(f"applied MutatingWebhookConfiguration {args.name}")
    return EXIT_OK


def _inject(args: argparse.Namespace) -> int:
    from certs.cabundle import encode_ca_bundle, inject_ca_bundle  # noqa: PLC0415

    ca_pem = _read_ca(args.ca_file)
    encode_ca_bundle(ca_pem)  # a bad file is a usage error, found before touching the cluster
    _with_kube(args, lambda kube: inject_ca_bundle(kube, args.name, ca_pem))
    print(f"wrote caBundle into MutatingWebhookConfiguration {args.name}")
    return EXIT_OK


_SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "generate": _generate,
    "webhook-config": _webhook_config,
    "inject-cabundle": _inject,
}


def command(args: argparse.Namespace) -> int:
    """Run one `certs` subcommand; 2 for bad input, 1 when the cluster or the files fail."""
    from autorollout.kube import KubeError  # noqa: PLC0415
    from certs.cabundle import WebhookConfigError  # noqa: PLC0415
    from certs.mint import CertificateError  # noqa: PLC0415

    try:
        return _SUBCOMMANDS[args.certs_command](args)
    except (UsageError, CertificateError, WebhookConfigError) as exc:
        print(f"kube-autorollout certs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ClusterWriteError, FileWriteError, KubeError, OSError) as exc:
        print(f"kube-autorollout certs: {exc}", file=sys.stderr)
        return EXIT_FAILURE

"""`kube-autorollout` argument parsing and dispatch to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from autorollout import __version__

Command = Callable[[argparse.Namespace], int]


def _command(module: str) -> Command:
    """`autorollout.cli.<module>.command`, imported when the subcommand runs: each command loads only
    what it needs (`certs` no HTTP server, `digest` no Kubernetes client)."""

    def run(args: argparse.Namespace) -> int:
        func: Command = importlib.import_module(f"autorollout.cli.{module}").command
        return func(args)

    return run


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="config file (default: $CONFIG_FILE)")
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig (default: in-cluster, else $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--strict-config",
        action="store_true",
        help="unknown keys in the config file are errors, not warnings ($KUBE_AUTOROLLOUT_STRICT_CONFIG)",
    )


def _add_webhook_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", metavar="PATH", help="serving certificate (webhook.tlsCertFile)")
    parser.add_argument("--tls-key", metavar="PATH", help="serving key (webhook.tlsKeyFile)")
    parser.add_argument("--webhook-host", metavar="HOST", help="listen address (webhook.host, 0.0.0.0)")
    parser.add_argument("--webhook-port", metavar="PORT", type=int, help="listen port (webhook.port, 8443)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kube-autorollout",
        description="Roll out Deployments, StatefulSets and DaemonSets when a mutable image tag moves.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="webhook server and reconciler in one process")
    _add_common(run)
    _add_webhook_flags(run)
    run.set_defaults(func=_command("run"))

    webhook = sub.add_parser("webhook", help="the admission webhook server only")
    _add_common(webhook)
    _add_webhook_flags(webhook)
    webhook.set_defaults(func=_command("webhook"))

    reconcile = sub.add_parser("reconcile", help="the scheduled reconciler only")
    _add_common(reconcile)
    reconcile.add_argument("--once", action="store_true", help="run one cycle, then exit")
    reconcile.add_argument("--dry-run", action="store_true", help="with --once: change nothing, print plan")
    reconcile.set_defaults(func=_command("reconcile"))

    status = sub.add_parser("status", help="table of labeled workloads and whether they are up to date")
    _add_common(status)
    status.add_argument("-o", "--output", choices=["wide"], help="wide: print whole digests")
    status.add_argument("--full", action="store_true", help="print whole digests (same as -o wide)")
    status.set_defaults(func=_command("status"))

    digest = sub.add_parser("digest", help="resolve one image reference to its registry digest")
    _add_common(digest)
    digest.add_argument("image", metavar="IMAGE")
    digest.add_argument("--platforms", action="store_true", help="also print platform manifest digests")
    digest.set_defaults(func=_command("digest"))

    certs = sub.add_parser("certs", help="webhook TLS: mint certificates, write the caBundle")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")
    generate = certs_sub.add_parser("generate", help="mint a CA and a serving certificate")
    generate.add_argument("--out", required=True, metavar="DIR", help="writes ca.crt, tls.crt, tls.key")
    generate.add_argument("--dns", nargs="+", action="extend", default=[], metavar="NAME", help="DNS names")
    generate.add_argument("--ip", nargs="+", action="extend", default=[], metavar="IP", help="IP addresses")
    generate.add_argument("--secret", metavar="NAMESPACE/NAME", help="also write a kubernetes.io/tls Secret")
    webhook_config = certs_sub.add_parser("webhook-config", help="print or apply the webhook configuration")
    webhook_config.add_argument("--name", default="kube-autorollout", help="configuration name")
    target = webhook_config.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="https://HOST:PORT/mutate, for a webhook outside the cluster")
    target.add_argument("--service", metavar="NAMESPACE/NAME", help="the webhook's Service")
    webhook_config.add_argument("--service-port", type=int, default=443, metavar="PORT")
    webhook_config.add_argument("--ca-file", metavar="PATH", help="CA certificate for the caBundle")
    webhook_config.add_argument(
        "--namespace", action="append", default=[], metavar="NS", help="only these namespaces (repeatable)"
    )
    webhook_config.add_argument(
        "--namespace-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only namespaces with this label (repeatable)",
    )
    webhook_config.add_argument("--timeout-seconds", type=int, default=5, metavar="N")
    webhook_config.add_argument("--apply", action="store_true", help="create or update it in the cluster")
    inject = certs_sub.add_parser("inject-cabundle", help="write the caBundle into the webhook configuration")
    inject.add_argument("--name", default="kube-autorollout", help="configuration name")
    inject.add_argument("--ca-file", required=True, metavar="PATH", help="CA certificate (PEM)")
    for certs_command in (generate, webhook_config, inject):
        _add_common(certs_command)
    certs.set_defaults(func=_command("certs"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""`kube-autorollout` argument parsing and dispatch to one module per subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from autorollout import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def _not_built(what: str) -> Command:
    def command(_: argparse.Namespace) -> int:
        print(f"kube-autorollout: `{what}` is not built yet", file=sys.stderr)
        return EXIT_USAGE

    return command


def _reconcile(args: argparse.Namespace) -> int:
    from autorollout.cli.reconcile import command  # noqa: PLC0415

    return command(args)


def _status(args: argparse.Namespace) -> int:
    from autorollout.cli.status import command  # noqa: PLC0415

    return command(args)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="config file (default: $CONFIG_FILE)")
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig (default: in-cluster, else $KUBECONFIG or ~/.kube/config)",
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
    run.set_defaults(func=_not_built("run"))

    webhook = sub.add_parser("webhook", help="the admission webhook server only")
    _add_common(webhook)
    _add_webhook_flags(webhook)
    webhook.set_defaults(func=_not_built("webhook"))

    reconcile = sub.add_parser("reconcile", help="the scheduled reconciler only")
    _add_common(reconcile)
    reconcile.add_argument("--once", action="store_true", help="run one cycle, then exit")
    reconcile.add_argument("--dry-run", action="store_true", help="with --once: change nothing, print plan")
    reconcile.set_defaults(func=_reconcile)

    status = sub.add_parser("status", help="table of labeled workloads and whether they are up to date")
    _add_common(status)
    status.add_argument("-o", "--output", choices=["wide"], help="wide: print whole digests")
    status.add_argument("--full", action="store_true", help="print whole digests (same as -o wide)")
    status.set_defaults(func=_status)

    digest = sub.add_parser("digest", help="resolve one image reference to its registry digest")
    _add_common(digest)
    digest.add_argument("image", metavar="IMAGE")
    digest.add_argument("--platforms", action="store_true", help="also print platform manifest digests")
    digest.set_defaults(func=_not_built("digest"))

    certs = sub.add_parser("certs", help="webhook TLS: mint certificates, write the caBundle")
    certs.set_defaults(func=_not_built("certs"))
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

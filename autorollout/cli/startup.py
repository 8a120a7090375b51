"""Start-up of the long-running commands (`run`, `webhook`, `reconcile`): read the configuration,
choose the log level, and log what operators look for, one structured line each: our version, the
effective configuration (credentials and `${VAR}` values hidden) and the API server's version."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
from dataclasses import dataclass

import httpx

from autorollout import __version__
from autorollout.config import Config, LoadedConfig, WebhookConfig, read_config
from autorollout.config.view import effective_config
from autorollout.kube import KubeClient, KubeError
from autorollout.logs import LogLevelChoice, choose_level, configure_logging

__all__ = ["StartUp", "announce", "announce_api_server", "start_logging"]

log = logging.getLogger("kube_autorollout.startup")
_API_VERSION_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class StartUp:
    """What start-up found: the loaded configuration and the log level chosen."""

    loaded: LoadedConfig
    log_level: LogLevelChoice

    @property
    def config(self) -> Config:
        return self.loaded.config


def start_logging(args: argparse.Namespace) -> StartUp:
    """Read the config file (`--config`, `--strict-config`), configure logging (config `logLevel` >
    `RUST_LOG` > info) and log each unknown key and unreadable RUST_LOG directive as a warning."""
    loaded = read_config(args.config, strict=True if getattr(args, "strict_config", False) else None)
    config = loaded.config
    choice = choose_level(config.log_level if "log_level" in config.model_fields_set else None, os.environ)
    configure_logging(choice.level)
    for warning in loaded.warnings:
        log.warning(warning, extra={"fields": {"config_file": loaded.source}})
    for problem in choice.problems:
        log.warning(problem)
    return StartUp(loaded, choice)


def announce(command: str, startup: StartUp, *, webhook: WebhookConfig | None = None) -> None:
    """Log our version and the effective configuration (one line each)."""
    log.info(
        "kube-autorollout starting",
        extra={
            "fields": {
                "version": __version__,
                "command": command,
                "python": platform.python_version(),
                "pid": os.getpid(),
                "log_level": startup.log_level.level,
                "log_level_from": startup.log_level.source,
            }
        },
    )
    view = effective_config(startup.loaded, webhook=webhook)
    view["logLevel"] = startup.log_level.level
    log.info("configuration", extra={"fields": {"config_file": startup.loaded.source, "config": view}})


async def announce_api_server(kube: KubeClient) -> None:
    """Log the API server's version (`GET /version`), waiting a few seconds at most for it."""
    server = httpx.URL(kube.settings.server)
    address = f"{server.host}:{server.port}" if server.port else server.host
    try:
        async with asyncio.timeout(_API_VERSION_TIMEOUT):
            version = await kube.get("/version")
    except (KubeError, TimeoutError) as exc:
        reason = str(exc) if isinstance(exc, KubeError) else f"no answer within {_API_VERSION_TIMEOUT:g}s"
        log.warning(
            "Kubernetes API server version unknown", extra={"fields": {"server": address, "error": reason}}
        )
        return
    log.info(
        "Kubernetes API server",
        extra={
            "fields": {
                "server": address,
                "git_version": str(version.get("gitVersion", "")),
                "platform": str(version.get("platform", "")),
            }
        },
    )

"""Reading the config file (a regular file, symlinks followed, of bounded size, never a device), and
the error every configuration problem is reported with (`autorollout.errors.ConfigError`)."""

from __future__ import annotations

import os
import stat

from autorollout.errors import ConfigError

__all__ = ["MAX_CONFIG_BYTES", "ConfigError", "read_config_file"]

MAX_CONFIG_BYTES = 1024 * 1024


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_config_file(path: str) -> str:
    """The text of the config file at `path`: a regular file (symlinks followed, as Kubernetes mounts
    ConfigMaps) of at most MAX_CONFIG_BYTES, UTF-8. Raises ConfigError with one line otherwise."""
    try:
        kind = _not_regular(os.stat(path).st_mode)
        if kind is not None:
            raise ConfigError([f"{path}: is {kind}, not a regular file; give a config file"])
        # O_NONBLOCK: a FIFO swapped in after the check must not block the open; fstat catches it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror or exc}"]) from None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            kind = _not_regular(info.st_mode)
            if kind is not None:
                raise ConfigError([f"{path}: is {kind}, not a regular file; give a config file"])
            content = b"" if info.st_size > MAX_CONFIG_BYTES else file.read(MAX_CONFIG_BYTES + 1)
            if info.st_size > MAX_CONFIG_BYTES or len(content) > MAX_CONFIG_BYTES:
                raise ConfigError(
                    [f"{path}: config file is larger than the limit of {MAX_CONFIG_BYTES:,} bytes (1 MiB)"]
                )
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror or exc}"]) from None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a UTF-8 text file"]) from None


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")

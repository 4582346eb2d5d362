"""Configuration: embedded defaults < TOML file < command-line flags.

The embedded defaults below are the values written out (with comments) in
configs/gkfs.toml; a test keeps the two equal. Only the [daemon] table
exists so far; unknown keys are an error so a typo never goes unnoticed.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from . import hostsfile, protocol

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A configuration file or value that cannot be used."""


@dataclass(frozen=True)
class DaemonConfig:
    rootdir: str = ""
    listen: str = "tcp://127.0.0.1:*"
    hosts_file: str = ""
    mount: str = "/gkfs"
    chunk_size: int = protocol.DEFAULT_CHUNK_SIZE
    log_level: str = "info"
    log_file: str = ""
    workers: int = 4
    max_frame_size: int = protocol.DEFAULT_MAX_FRAME_SIZE
    sync: bool = False
    security: str = ""

    def validated(self) -> "DaemonConfig":
        if self.chunk_size < 4096 or self.chunk_size & (self.chunk_size - 1):
            raise ConfigError(f"chunk_size must be a power of two >= 4096, got {self.chunk_size}")
        if self.chunk_size > self.max_frame_size:
            raise ConfigError("chunk_size may not exceed max_frame_size")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if self.workers < 1:
            raise ConfigError("workers must be >= 1")
        if "://" in self.listen and not self.listen.startswith(("tcp://", "ipc://")):
            raise ConfigError(f"listen must be tcp://HOST:PORT, ipc:///path, or an interface name, "
                              f"a network a.b.c.d/n or 'auto', got {self.listen!r}")
        if self.security not in ("", "curve", "off"):
            raise ConfigError(f"security must be 'curve' or 'off', got {self.security!r}")
        if not self.mount.startswith("/"):
            raise ConfigError(f"mount must be an absolute path, got {self.mount!r}")
        return self

    def hosts_path(self) -> Path:
        return hostsfile.resolve_hosts_file(self.hosts_file or None)


_TYPES = {f.name: f.type for f in fields(DaemonConfig)}


def _coerce(name: str, value: Any) -> Any:
    kind = _TYPES[name]
    want = {"str": str, "int": int, "bool": bool}[kind]
    if want is int and isinstance(value, bool) or not isinstance(value, want):
        raise ConfigError(f"daemon.{name} must be {kind}, got {value!r}")
    return value


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML config; returns the [daemon] table's keys, type-checked."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    unknown_tables = set(doc) - {"daemon"}
    if unknown_tables:
        raise ConfigError(f"{p}: unknown table(s): {', '.join(sorted(unknown_tables))}")
    table = doc.get("daemon", {})
    out = {}
    for key, value in table.items():
        if key not in _TYPES:
            raise ConfigError(f"{p}: unknown key daemon.{key}")
        out[key] = _coerce(key, value)
    return out


def daemon_config(config_file: str | os.PathLike | None = None,
                  overrides: Mapping[str, Any] | None = None) -> DaemonConfig:
    """defaults < config file < overrides (flags; None values are ignored)."""
    cfg = DaemonConfig()
    if config_file:
        cfg = replace(cfg, **load_file(config_file))
    if overrides:
        cfg = replace(cfg, **{k: _coerce(k, v) for k, v in overrides.items() if v is not None})
    return cfg.validated()


def default_config_path() -> Path:
    """configs/gkfs.toml of the source tree (documentation of the defaults)."""
    return Path(__file__).resolve().parent.parent / "configs" / "gkfs.toml"

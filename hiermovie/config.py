"""Typed job configs: dataclasses filled from a YAML/TOML file plus command-line overrides.

Every leaf field `a.b` becomes a flag `--a.b`; values are checked against the type hints and
the dataclass's own `__post_init__` checks, and a bad value is one `ConfigError` naming the field.
A component config is nested (`mask`, `world`); a config class may keep the flat names its
fields had before they were nested as `ALIASES` (flat -> dotted), accepted in files, flags and
Python for a release.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that does not fit; the message starts with the field's dotted name."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, where a job turns it into this: handled as Ctrl-C is (the CLI exits 143
    instead of 130). `seen` stays set: a library the signal interrupts (Ray's wait, under
    load) can re-raise it as a plain KeyboardInterrupt."""

    seen = False


def opt(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    """A dataclass field with a help text for the CLI."""
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value),
                                 metadata={"help": help}, **kw)
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def _coerce(tp: Any, value: Any, name: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, name)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{name}: got {value!r}")
    if origin is Literal:
        for a in args:
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise ConfigError(f"{name}: must be one of {', '.join(map(repr, args))}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table of fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{name}.")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v] if value else []
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        item = args[0] if args else Any
        out = [_coerce(item, v, name) for v in value]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return value
    if tp is Any:
        return value
    return _coerce_scalar(tp, value, name)


def _coerce_scalar(tp: Any, value: Any, name: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                        "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return str(value)
    return value


def aliases(cls: type) -> dict[str, str]:
    """A config class's flat names kept for its nested fields (flat -> dotted)."""
    return getattr(cls, "ALIASES", {})


def _unalias(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`data` with each flat alias moved to its nested place (both given: refused)."""
    moved = {k: v for k, v in data.items() if k not in aliases(cls)}
    for flat, dotted in aliases(cls).items():
        if flat not in data:
            continue
        *parents, leaf = dotted.split(".")
        node = moved
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{prefix}{part}: expected a table of fields, got {node!r}")
        if leaf in node:
            raise ConfigError(f"{prefix}{flat}: given twice (as {flat} and as {dotted})")
        node[leaf] = data[flat]
    return moved


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build a (nested) config dataclass from plain data, checking every value."""
    data = _unalias(cls, data, prefix)
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown field (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:  # a __post_init__ range check
        msg = str(e)
        named = msg if msg.startswith(prefix) or not prefix else f"{prefix}{msg}"
        raise ConfigError(named) from None
    except TypeError as e:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def load_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"config: cannot read {p}: {e.strerror}") from None
    try:
        data = tomllib.loads(text) if p.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"config: {p} is not valid {p.suffix.lstrip('.') or 'YAML'}: "
                          f"{str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {p} must hold a mapping of fields")
    return data


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(_leaves(tp, f"{prefix}{f.name}."))
        else:
            out.append((f"{prefix}{f.name}", f, tp))
    return out


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """--config FILE, --print-config, and one --dotted.flag per leaf field of `cls`."""
    parser.add_argument("--config", metavar="FILE", help="YAML or TOML file of config fields")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as YAML and exit")
    defaults = to_dict(_default(cls))
    for name, f, tp in _leaves(cls):
        value: Any = defaults
        for part in name.split("."):
            value = value[part]
        if get_origin(tp) is Literal:
            kind = "one of " + ", ".join(map(str, get_args(tp)))
        else:
            kind = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
        parser.add_argument(f"--{name}", dest=f"cfg:{name}", default=argparse.SUPPRESS,
                            metavar=name.rsplit(".", 1)[-1].upper(),
                            help=f"{f.metadata.get('help', '')} [{kind}, default: {value!r}]")
    for flat, dotted in aliases(cls).items():  # the same destination: one value either way
        parser.add_argument(f"--{flat}", dest=f"cfg:{flat}", default=argparse.SUPPRESS,
                            metavar=dotted.rsplit(".", 1)[-1].upper(),
                            help=f"the flat name of --{dotted}, kept for this release")


def _default(cls: type) -> Any:
    try:
        return cls()
    except TypeError:  # required fields: show them as empty
        hints = get_type_hints(cls)
        return cls(**{f.name: hints[f.name]() for f in dataclasses.fields(cls)
                      if f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING})


def resolve(cls: type[T], args: argparse.Namespace) -> T:
    """File values first, then flags; returns the checked config."""
    data: dict[str, Any] = load_file(args.config) if getattr(args, "config", None) else {}
    for key, value in vars(args).items():
        if not key.startswith("cfg:"):
            continue
        node = data
        parts = key[4:].split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return from_dict(cls, data)

"""Field kinds: each field module registers its kind (config defaults and builder) where the network is defined.

A config is a plain dict with ``kind`` (stored in checkpoints): :func:`field_config` completes one from the
kind's defaults, :func:`build_field` builds its network. A new network registers itself with
``@field_kind("name", defaults)`` on its builder; nothing here lists the kinds.

A kind's defaults are the published network sizes (IGR 8 x 512, SIREN 3 x 256, Instant-NGP's 16 levels, ...).
They are not a fit's defaults: a fit passes every value from its settings (``inr_blender.settings``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..settings.spec import Registry

Config = dict[str, Any]


@dataclass(frozen=True)
class FieldKind:
    """A registered field kind: its config defaults, its builder, and an optional step that derives values."""

    name: str
    defaults: Config
    build: Callable[[Config], nn.Module]
    complete: Callable[[Config], None] | None = None  # fills derived values (IGR's skip) into a new config


FIELD_KINDS: Registry[FieldKind] = Registry("field kind")


def field_kind(name: str, defaults: Config, complete: Callable[[Config], None] | None = None):
    """Decorator: register the builder of field kind ``name`` with its config ``defaults`` (``kind`` added)."""

    def register(build: Callable[[Config], nn.Module]) -> Callable[[Config], nn.Module]:
        FIELD_KINDS.add(name, FieldKind(name, {"kind": name, **defaults}, build, complete))
        return build

    return register


def _kind(kind: Any) -> FieldKind:
    if kind not in FIELD_KINDS:
        raise ValueError(f"unknown field kind {kind!r}; known: {', '.join(FIELD_KINDS.names())}")
    return FIELD_KINDS.get(kind)


def default_config(kind: str) -> Config:
    """A copy of ``kind``'s default config."""
    return dict(_kind(kind).defaults)


def field_config(kind: str, **overrides: Any) -> Config:
    """A complete config for ``kind``: its defaults updated with ``overrides`` (None values and unknown keys ignored).

    Derived values (IGR's ``skip``) are made explicit so the stored config rebuilds exactly the same network.
    """
    spec = _kind(kind)
    config = dict(spec.defaults)
    config.update({k: v for k, v in overrides.items() if k in config and v is not None})
    if spec.complete is not None:
        spec.complete(config)
    return config


def build_field(config: Config) -> nn.Module:
    """Instantiate the network described by ``config`` (see :func:`field_config`)."""
    return _kind(config.get("kind")).build(config)

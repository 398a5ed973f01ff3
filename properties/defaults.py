"""Operator settings from the backend's declarations (``inr_blender/settings/``), so each is defined once.

Blender's enum items are upper case ("FAST", "HASHGRID"); the backend's names are lower case
("fast", "hashgrid"). :func:`enum_item` and :func:`backend_name` are the one mapping between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..inr_blender.settings.presets import Preset
from ..inr_blender.settings.spec import Declared, Param

CUSTOM = "CUSTOM"  # Blender's item for no preset (the backend's "custom")
_CUSTOM_ITEM = (CUSTOM, "Custom", "Every setting as set below")


def enum_item(name: str) -> str:
    """The Blender enum item of a backend name ('hashgrid' -> 'HASHGRID')."""
    return name.upper()


def backend_name(item: str) -> str:
    """The backend name of a Blender enum item ('HASHGRID' -> 'hashgrid')."""
    return item.lower()


def method_item(settings: Declared) -> tuple[str, str, str]:
    """The enum item of a declared method or model: (item, label, help)."""
    return (enum_item(settings.name), settings.label, settings.help)


def find_param(items: Iterable[Param], name: str) -> Param:
    """The parameter ``name`` among ``items`` (a method's or a job's declared settings)."""
    for param in items:
        if param.name == name:
            return param
    raise KeyError(name)


def prop_from_param(param: Param, preset: Preset | None = None, **overrides: Any):
    """The bpy property of ``param``: its label as name, its help as description, its default (``preset``'s value
    when it sets one) and bounds (``overrides`` replace any of them, or add e.g. ``soft_max``, ``precision``)."""
    kind = param.type
    default = preset.values.get(param.name, param.default) if preset is not None else param.default
    kw: dict[str, Any] = {"name": param.label or param.name.replace("_", " ").title(), "description": param.help}
    if param.choices:
        items = [(enum_item(c), c.replace("_", " ").title(), "") for c in param.choices]
        kw.update(items=items, default=enum_item(default))
        kw.update(overrides)
        return EnumProperty(**kw)
    kw["default"] = default
    if kind in (int, float):
        if param.minimum is not None:
            kw["min"] = kind(param.minimum)
        elif param.positive:
            kw["min"] = 1 if kind is int else 1e-6
        if param.maximum is not None:
            kw["max"] = kind(param.maximum)
    kw.update(overrides)
    prop = {bool: BoolProperty, int: IntProperty, float: FloatProperty, str: StringProperty}[kind]
    return prop(**kw)


def preset_items(table: dict[str, Preset]) -> list[tuple[str, str, str]]:
    """A preset EnumProperty's items: the backend table's presets, then Custom."""
    return [(enum_item(p.name), p.label, p.help) for p in table.values()] + [_CUSTOM_ITEM]


def preset_values(table: dict[str, Preset], enums: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The backend table as the operators use it: item -> settings, with the ``enums`` settings' values as enum
    items and the ``drop`` settings left out (those the operator does not have, e.g. the method it fixes)."""
    return {enum_item(p.name): {k: enum_item(v) if k in enums else v for k, v in p.values.items() if k not in drop} for p in table.values()}

"""What SDF methods (fitting/methods) and radiance models (fitting/radiance) share: a class declared by its
torch-free settings (:class:`~inr_blender.settings.spec.Declared`), registered under their name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from ..settings.spec import Declared, Param, Registry, Spec, Variants


class Variant:
    """A fitting variant: subclass it, set ``settings``, define :meth:`field_config`, register it."""

    settings: ClassVar[Declared]

    @classmethod
    def check(cls, p: dict[str, Any]) -> None:
        """Rules across the resolved settings ``p`` (from the settings; may fill derived values)."""
        if cls.settings.check is not None:
            cls.settings.check(p)

    @classmethod
    def field_config(cls, p: dict[str, Any]) -> dict[str, Any]:
        """The network config (stored in the checkpoint) of resolved settings ``p``."""
        raise NotImplementedError


V = TypeVar("V", bound=type[Variant])


def registrar(registry: Registry[V]) -> Callable[[V], V]:
    """A class decorator that registers a variant in ``registry`` under its settings' name."""

    def register(cls: V) -> V:
        registry.add(cls.settings.name, cls)
        return cls

    return register


def variant_spec(
    name: str,
    common: tuple[Param, ...],
    registry: Registry[V],
    key: str,
    default: str,
    *,
    help: str,
    check: Callable[[dict[str, Any]], None] | None = None,
    passthrough: tuple[str, ...] = (),
) -> Spec:
    """The settings of a fit with variants: ``common`` plus the settings of the variant named by ``key``, read from
    ``registry`` when resolved (so a variant registered later counts); ``check``, then the variant's own rules."""

    def check_all(p: dict[str, Any]) -> None:
        if check is not None:
            check(p)
        registry.get(p[key]).check(p)

    def sets() -> dict[str, tuple[Param, ...]]:
        return {variant: cls.settings.params for variant, cls in registry.items()}

    return Spec(name, common, help=help, variants=Variants(key, sets, default, what=registry.what), check=check_all, passthrough=passthrough)

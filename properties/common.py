"""What the capability groups share: a setting defined once, for a field's group and for its operator."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

OPERATOR_NOTE = " (when not set: the field's)"


def for_operator(setting: Any, **changes: Any) -> Any:
    """The operator's copy of a field's ``setting`` (a ``bpy.props`` definition): the same name, default, bounds and
    help, not remembered between calls (SKIP_SAVE), so the field's value stands in when the caller does not set it."""
    keywords = dict(setting.keywords, options={"SKIP_SAVE"})
    if keywords.get("description"):
        keywords["description"] += OPERATOR_NOTE
    keywords.update(changes)
    return setting.function(**keywords)


def setting_paths(group: str, names: Iterable[str]) -> dict[str, str]:
    """An operator's ``field_settings``: each of ``names`` (an operator property named as the setting in ``group``)
    -> the setting's dotted path on ``inr_field`` (``"skeleton.delta"``)."""
    return {name: f"{group}.{name}" for name in names}

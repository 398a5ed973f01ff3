"""What the sidebar's panels share: the tab, the active field, a capability's settings box and result grid."""

from __future__ import annotations

import bpy

FIELD_PANEL = "VIEW3D_PT_inr_field"
FIT_PANEL = "VIEW3D_PT_inr_fit"


class INRPanel:
    """A panel of the 3D viewport's sidebar tab "INR"."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "INR"


def active_field(context: bpy.types.Context) -> bpy.types.Object | None:
    """The active object when it is a fitted field."""
    obj = context.active_object
    return obj if obj is not None and obj.inr_field.is_field else None


class FieldSubPanel(INRPanel):
    """A capability's sub-panel of the Active Field panel, shown for the fields it works on:
    ``kinds`` (field kinds), less the ``exclude_methods``, or only ``methods`` when given."""

    bl_parent_id = FIELD_PANEL
    kinds: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    exclude_methods: tuple[str, ...] = ()

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = active_field(context)
        if obj is None:
            return False
        s = obj.inr_field
        if cls.methods:
            return s.kind in cls.kinds and s.method in cls.methods
        return s.kind in cls.kinds and s.method not in cls.exclude_methods


def running(context: bpy.types.Context) -> bool:
    return context.window_manager.inr_job.running


def settings_column(layout: bpy.types.UILayout, owner: bpy.types.PropertyGroup, names: tuple[tuple[str, str | None], ...]) -> None:
    """A capability's settings, stored on the field (``owner``: its group): ``(name, label or None)`` each."""
    col = layout.column(align=True)
    col.use_property_split = True
    for name, text in names:
        col.prop(owner, name, **({"text": text} if text else {}))


def operator_row(
    layout: bpy.types.UILayout, context: bpy.types.Context, operator: str, icon: str, enabled: bool = True, **kwargs
) -> bpy.types.OperatorProperties:
    """The capability's button, disabled while a job runs."""
    row = layout.row()
    row.enabled = enabled and not running(context)
    return row.operator(operator, icon=icon, **kwargs)


def result_grid(layout: bpy.types.UILayout, rows: list[tuple[str, str]]) -> None:
    """What the last run found: label and value, two columns."""
    if rows:
        grid = layout.grid_flow(columns=2, align=True)
        for label, value in rows:
            grid.label(text=label)
            grid.label(text=value)


def enum_name(owner: bpy.types.bpy_struct, prop: str) -> str:
    """The display name of an enum property's current item."""
    return owner.bl_rna.properties[prop].enum_items[getattr(owner, prop)].name

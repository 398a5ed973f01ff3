"""Object > Neural Fields menu: every operator sits here, which is how F3 finds it; and Closest Points in mesh Edit
Mode's Vertex menu, where its queries are the selected vertices."""

from __future__ import annotations

import bpy

# The menu's sections, in order; each operator names its own (``menu_entry = (section, order, icon)``).
SECTIONS = ("sdf", "ranges", "displacement", "shape_space", "nerf", "backend")


def menu_entries(operators: tuple[type, ...]) -> list[list[tuple[str, str]]]:
    """The menu's (idname, icon) entries, section by section: every operator with a ``menu_entry``."""
    sections: dict[str, list[tuple[int, str, str]]] = {name: [] for name in SECTIONS}
    for cls in operators:
        if hasattr(cls, "menu_entry"):
            section, order, icon = cls.menu_entry
            sections[section].append((order, cls.bl_idname, icon))
    return [[(idname, icon) for _order, idname, icon in sorted(entries)] for entries in sections.values()]


class VIEW3D_MT_inr(bpy.types.Menu):
    bl_label = "Neural Fields"
    bl_idname = "VIEW3D_MT_inr"

    def draw(self, context: bpy.types.Context) -> None:
        from .. import operators

        layout = self.layout
        layout.operator_context = "INVOKE_DEFAULT"
        for i, section in enumerate(menu_entries(operators.classes)):
            if i:
                layout.separator()
            for idname, icon in section:
                layout.operator(idname, icon=icon)


def draw_object_menu(self, context: bpy.types.Context) -> None:
    self.layout.separator()
    self.layout.menu(VIEW3D_MT_inr.bl_idname)


def draw_edit_mesh_menu(self, context: bpy.types.Context) -> None:
    """Mesh Edit Mode's Vertex menu: Closest Points from the selected vertices (the field selected too)."""
    self.layout.separator()
    self.layout.operator("inr.closest_points", icon="SNAP_NORMAL")

"""Sidebar panels and menus (drawing only): Job, Fit (sub-panels per kind of fit), Active Field (a sub-panel per
capability, shown for the fields it works on), Backend; the Object menu.

Every Panel, Menu and UIList class defined in a module here is registered (see ``discovery``); a panel's place
among its siblings is its ``bl_order``.
"""

import bpy

from ..discovery import find
from .menu import draw_object_menu

# parents before their sub-panels (Blender needs the parent registered first)
classes = tuple(
    sorted(
        find(__name__, __path__, (bpy.types.Panel, bpy.types.Menu, bpy.types.UIList)),
        key=lambda c: (bool(getattr(c, "bl_parent_id", "")), getattr(c, "bl_order", 0)),
    )
)

__all__ = ["classes", "draw_object_menu"]

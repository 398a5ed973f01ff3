"""Blender operators (thin: read the scene, submit a job, write the result back), one capability per module.

Every Operator class defined in a module here is registered (see ``discovery``); each says where the Object >
Neural Fields menu shows it (``menu_section``, ``menu_order``, ``menu_icon``: panels/menu.py).
"""

import bpy

from ..discovery import find

classes = find(__name__, __path__, (bpy.types.Operator,))

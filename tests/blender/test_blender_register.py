"""Registering the add-on: clean register / unregister / register in one process."""

from __future__ import annotations

import bpy

from conftest import ADDON_ID, REPO, set_local_backend


def _menu_funcs():
    return [f.__module__ for f in bpy.types.VIEW3D_MT_object._dyn_ui_initialize()]


def _ours():
    return {
        "operators": [
            n
            for n in (
                "INR_OT_fit_sdf",
                "INR_OT_extract_mesh",
                "INR_OT_extract_skeleton",
                "INR_OT_sample_isopoints",
                "INR_OT_evaluate_field",
                "INR_OT_cancel_job",
                "INR_OT_check_backend",
                "INR_OT_setup_backend",
            )
            if hasattr(bpy.types, n)
        ],
        "panels": [n for n in dir(bpy.types) if n.startswith("VIEW3D_PT_inr") or n == "VIEW3D_MT_inr"],
        "properties": [a for a in ("inr_field",) if hasattr(bpy.types.Object, a)]
        + [a for a in ("inr_job", "inr_backend") if hasattr(bpy.types.WindowManager, a)],
        "menu": [m for m in _menu_funcs() if m.startswith(ADDON_ID)],
        "handlers": [h.__module__ for h in (*bpy.app.handlers.save_pre, *bpy.app.handlers.load_post) if h.__module__.startswith(ADDON_ID)],
    }


def test_register_unregister_register_leaves_nothing_behind(addon):
    import addon_utils

    present = _ours()
    assert len(present["operators"]) == 8 and len(present["panels"]) == 17
    assert present["properties"] == ["inr_field", "inr_job", "inr_backend"]
    assert len(present["menu"]) == 1 and len(present["handlers"]) == 2  # checkpoints on save, migration on load

    addon_utils.disable(ADDON_ID, default_set=True)
    assert _ours() == {"operators": [], "panels": [], "properties": [], "menu": [], "handlers": []}

    addon_utils.enable(ADDON_ID, default_set=True, handle_error=None)
    set_local_backend()
    assert _ours() == present


def test_every_operator_is_in_the_object_menu_so_f3_finds_it(addon):
    """The menu draws its entries from the registered operators (each names its section); every one but Set up
    Backend (in the preferences) is there, each once, in sections that are none of them empty."""
    sections = addon.panels.menu.menu_entries(addon.operators.classes)
    assert len(sections) == len(addon.panels.menu.SECTIONS) and all(sections)
    in_menu = [idname for section in sections for idname, _icon in section]
    assert in_menu[0] == "inr.fit_sdf" and len(in_menu) == len(set(in_menu))
    assert sorted(in_menu) == sorted(cls.bl_idname for cls in addon.operators.classes if cls.bl_idname != "inr.setup_backend")


def test_every_icon_the_ui_names_exists_in_blender(addon):
    import re

    valid = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())
    used = {
        m
        for f in [*REPO.glob("*.py"), *(REPO / "panels").glob("*.py"), *(REPO / "operators").glob("*.py")]
        for m in re.findall(r'icon="([A-Z_0-9]+)"', f.read_text())
    } | {icon for section in addon.panels.menu.menu_entries(addon.operators.classes) for _idname, icon in section}
    assert len(used) >= 8
    assert used <= valid, used - valid


HEADLESS_SESSION = """
import sys
import bpy
import addon_utils
sys.path.insert(0, sys.argv[1])
assert addon_utils.enable({addon!r}, default_set=True, handle_error=None) is not None
bpy.ops.wm.read_homefile(use_empty=True)
bpy.ops.mesh.primitive_monkey_add()
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])
bpy.ops.wm.open_mainfile(filepath=sys.argv[2])
print("session done")
"""


def test_a_headless_session_with_the_add_on_exits(addon, tmp_path):
    """A bpy-module script that enables the add-on, opens and saves files, ends: nothing we register may keep the
    process alive at exit (a bpy.app.timer did, in bpy 4.5)."""
    import subprocess
    import sys

    addons = tmp_path / "addons"
    addons.mkdir()
    (addons / ADDON_ID).symlink_to(REPO, target_is_directory=True)
    script = tmp_path / "session.py"
    script.write_text(HEADLESS_SESSION.format(addon=ADDON_ID))
    try:
        done = subprocess.run([sys.executable, str(script), str(addons), str(tmp_path / "saved.blend")], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"the session did not exit within 60 s; its output:\n{hung.stdout!r}") from None
    assert done.returncode == 0, done.stderr[-2000:]
    assert "session done" in done.stdout

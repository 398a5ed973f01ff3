"""The sidebar's panels: each capability is a sub-panel of Fit or Active Field, shown for the fields it works on.

Blender draws panels only in a window, which the bpy module has not: ``draw`` runs here with a stand-in for the
layout that records nothing but checks what the drawing names against the real RNA (every property a panel shows
exists on the real field's group, every operator it offers is registered, with the properties it sets)."""

from __future__ import annotations

import types

import pytest

import bpy

from conftest import add_suzanne, fake_field, select_only

FIELD = "VIEW3D_PT_inr_field"
FIT = "VIEW3D_PT_inr_fit"
# the Active Field's sub-panels each kind and method of field shows
SHOWN = {
    ("SDF", "IGR"): {"evaluation", "skeleton", "isopoints", "ranges"},
    ("SDF", "NEURAL_SKELETON"): {"evaluation", "skeleton", "isopoints", "ranges"},
    ("SDF", "IDF"): {"displacement", "evaluation", "skeleton", "isopoints", "ranges"},
    ("SDF", "IDF_TRANSFER"): {"displacement", "skeleton", "isopoints", "ranges"},
    ("SDF", "LATENT_SHAPE"): {"evaluation", "skeleton", "isopoints", "ranges"},
    ("NERF", "IGR"): {"nerf", "ranges"},
    ("SHAPE_SPACE", "DEEPSDF"): {"shapes", "interpolate", "reconstruct"},
}


def _ours(addon) -> list[type]:
    return [cls for cls in addon.panels.classes if issubclass(cls, bpy.types.Panel)]


def _field_subpanels(addon) -> dict[str, type]:
    return {cls.bl_idname.removeprefix(FIELD + "_"): cls for cls in _ours(addon) if getattr(cls, "bl_parent_id", "") == FIELD}


def test_every_panel_sits_in_the_inr_tab_under_a_registered_parent(addon):
    panels = _ours(addon)
    ids = [cls.bl_idname for cls in panels]
    assert len(ids) == len(set(ids)) == 16
    for cls in panels:
        assert getattr(bpy.types, cls.bl_idname) is cls and cls.bl_category == "INR" and cls.bl_space_type == "VIEW_3D"
        parent = getattr(cls, "bl_parent_id", "")
        assert parent in ("", FIELD, FIT), cls.bl_idname
        if parent:  # registered after its parent, so it can attach
            assert ids.index(parent) < ids.index(cls.bl_idname)
    assert {cls.bl_idname for cls in panels if getattr(cls, "bl_parent_id", "") == FIT} == {
        "VIEW3D_PT_inr_fit_displacement",
        "VIEW3D_PT_inr_fit_shape_space",
        "VIEW3D_PT_inr_fit_nerf",
    }
    assert set(_field_subpanels(addon)) == set().union(*SHOWN.values())
    # the capabilities a user opens when needed start closed
    closed = {name for name, cls in _field_subpanels(addon).items() if "DEFAULT_CLOSED" in getattr(cls, "bl_options", set())}
    assert closed == {"evaluation", "skeleton", "isopoints", "ranges", "interpolate", "reconstruct"}


@pytest.mark.parametrize("kind, method", list(SHOWN))
def test_a_field_shows_the_subpanels_of_its_kind(scene, addon, kind, method):
    field = fake_field(kind)
    field.inr_field.method = method
    shown = {name for name, cls in _field_subpanels(addon).items() if cls.poll(bpy.context)}
    assert shown == SHOWN[kind, method]


def test_no_field_no_subpanels(scene, addon):
    subpanels = _field_subpanels(addon).values()
    assert not any(cls.poll(bpy.context) for cls in subpanels)  # nothing active
    select_only(add_suzanne(subdivision_levels=0))
    assert not any(cls.poll(bpy.context) for cls in subpanels)  # a mesh is not a field


class _Operator:
    """What ``layout.operator`` returns: setting a property checks that the operator has it."""

    def __init__(self, idname: str) -> None:
        module, name = idname.split(".")
        self.__dict__["_props"] = getattr(getattr(bpy.ops, module), name).get_rna_type().properties.keys()

    def __setattr__(self, name, value) -> None:
        assert name in self._props, f"the operator has no property {name!r}"


class _Layout:
    """A stand-in for bpy.types.UILayout: every call returns a layout; what it names is checked against the real RNA."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: _Layout()

    def prop(self, owner, name, **kwargs):
        assert name in owner.bl_rna.properties, f"{owner.bl_rna.identifier} has no property {name!r}"

    def operator(self, idname, **kwargs):
        return _Operator(idname)

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs):
        assert hasattr(bpy.types, list_type) and prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties


@pytest.mark.parametrize("kind, method", list(SHOWN))
def test_every_shown_panel_draws_what_the_field_has(scene, addon, kind, method):
    bpy.data.objects.new("Target", bpy.data.meshes.new("Target"))
    field = fake_field(kind)
    field.inr_field.method = method
    s = field.inr_field
    s.loss_history.add().loss = 1.0  # the loss curve too
    s.has_metrics = s.skeleton.has_result = s.isopoints.has_result = s.ranges.raycast.has_result = s.ranges.closest.has_result = True
    s.ranges.intersection.verdict = "UNKNOWN"
    s.shape_space.shapes.add().name = "Shape"
    drawn = []
    for cls in _ours(addon):
        if cls.poll(bpy.context) if hasattr(cls, "poll") else True:
            panel = types.SimpleNamespace(layout=_Layout())
            for method_name in ("draw_header", "draw"):
                if hasattr(cls, method_name):
                    getattr(cls, method_name)(panel, bpy.context)
            drawn.append(cls.bl_idname)
    assert FIELD in drawn and FIT in drawn and {f"{FIELD}_{name}" for name in SHOWN[kind, method]} <= set(drawn)

"""Operator defaults and presets are the backend's (inr_blender/settings/): a change on one side only fails here."""

from __future__ import annotations

import pytest

import bpy

from inr_blender.settings import presets, sdf

# Operator properties that are no backend setting of the same meaning, and why.
NOT_SETTINGS = {
    "preset": "the preset itself (checked against the tables below)",
    "method": "the method itself",
    "learning_rate": "0 stands for the method's own rate",
    "width": "0 stands for the method's published size; 4 x 256 is the operator's CPU-sized default",
    "depth": "0 stands for the method's published size; 4 x 256 is the operator's CPU-sized default",
    "use_isopoints": "switches the iso-points on; the backend's isopoints=0 means off",
    "isopoints": "how many when switched on; the backend's 0 means off",
    "preview_every": "live previews are on in the UI (2 s); headless they keep the backend's 0 (off) unless set",
}
# The neural skeleton's weights are ns_<name> on Fit SDF, apart from SIREN's of the same names.
NEURAL_SKELETON = {f"ns_{n}": n for n in ("w_surface", "w_normal", "w_eikonal", "w_hint", "w_hint_normal", "num_hints")}
# Transfer Detail's own settings (its job's, not a fit's); its fit's nu is fit_nu.
TRANSFER_OWN = {"source", "target", "strength", "nu", "mode", "resolution"}


def _operator_props(idname: str) -> dict:
    group, name = idname.split(".")
    rna = getattr(getattr(bpy.ops, group), name).get_rna_type()
    return {p.identifier: p for p in rna.properties if p.identifier != "rna_type"}


def _same(prop, backend) -> bool:
    if prop.type == "ENUM":  # items are the backend's names in upper case (range modes keep theirs)
        return prop.default.upper() == backend.upper()
    if prop.type == "FLOAT":
        return prop.default == pytest.approx(backend, rel=1e-6, abs=1e-12)
    return prop.default == backend


def _check(idname: str, backend_of: dict[str, tuple[str, dict]], skip: set[str]) -> int:
    """Every property of the operator is either a backend setting (``backend_of``: property -> (setting, the
    defaults it is read from)) with the backend's default, or in ``skip``; returns how many were compared."""
    compared, wrong, unknown = 0, [], []
    for name, prop in _operator_props(idname).items():
        if name in skip:
            continue
        if name not in backend_of:
            unknown.append(name)
            continue
        setting, defaults = backend_of[name]
        compared += 1
        if not _same(prop, defaults[setting]):
            wrong.append(f"{idname}.{name} = {prop.default!r}, the backend's {setting} = {defaults[setting]!r}")
    assert not wrong, wrong
    assert not unknown, f"{idname}: properties neither mapped to a backend setting nor listed as not one: {unknown}"
    return compared


def test_fit_sdf_defaults_are_the_methods(addon):
    props = _operator_props("inr.fit_sdf")
    assert props["method"].default == "IGR"  # the run settings' defaults are the default method's
    backend_of = {name: (name, sdf.method_defaults("igr")) for name in props}
    for item, names in addon.operators.fit_sdf.INR_OT_fit_sdf._method_props.items():
        for name in names:
            backend_of[name] = (NEURAL_SKELETON.get(name, name), sdf.method_defaults(item.lower()))
    backend_of = {k: v for k, v in backend_of.items() if v[0] in v[1]}
    assert _check("inr.fit_sdf", backend_of, set(NOT_SETTINGS)) >= 30


def test_displacement_defaults_are_the_idf_methods(addon):
    idf = sdf.method_defaults("idf")
    props = _operator_props("inr.fit_displacement")
    backend_of = {name: (name, idf) for name in props if name in idf}
    assert _check("inr.fit_displacement", backend_of, set(NOT_SETTINGS)) >= 20
    # Transfer Detail fits what has no field yet with the same settings (its own nu is the transfer's)
    backend_of = {name: (name, idf) for name in _operator_props("inr.transfer_detail") if name in idf and name not in TRANSFER_OWN}
    backend_of["fit_nu"] = ("nu", idf)
    assert _check("inr.transfer_detail", backend_of, set(NOT_SETTINGS) | TRANSFER_OWN) >= 20


@pytest.mark.parametrize(
    "idname, table, default, module, enums, dropped",
    [
        ("inr.fit_sdf", presets.SDF, presets.SDF_DEFAULT, "fit_sdf", ("method",), ()),
        ("inr.fit_displacement", presets.DISPLACEMENT, presets.DISPLACEMENT_DEFAULT, "common.displacement", (), ("method",)),
        ("inr.transfer_detail", presets.DISPLACEMENT, presets.DISPLACEMENT_DEFAULT, "common.displacement", (), ("method",)),
        ("inr.fit_shape_space", presets.SHAPE_SPACE, presets.SHAPE_SPACE_DEFAULT, "fit_shape_space", (), ()),
    ],
)
def test_preset_items_and_values_are_the_backends(addon, idname, table, default, module, enums, dropped):
    props = _operator_props(idname)
    preset = props["preset"]
    items = [(i.identifier, i.name, i.description) for i in preset.enum_items]
    assert items[:-1] == [(p.name.upper(), p.label, p.help) for p in table.values()]
    assert items[-1][0] == "CUSTOM" and preset.default == default.upper()
    used = addon.operators
    for part in module.split("."):
        used = getattr(used, part)
    assert set(used.PRESETS) == {p.name.upper() for p in table.values()}
    for p in table.values():
        values = used.PRESETS[p.name.upper()]
        expected = {k: v for k, v in p.values.items() if k not in dropped}
        assert {k: v.lower() if k in enums else v for k, v in values.items()} == expected, p.name
        for k, v in values.items():  # each value is one the operator's property takes
            assert k in props, f"{idname} has no property {k} for preset {p.name}"
            if k in enums:
                assert v in {i.identifier for i in props[k].enum_items}, (k, v)


# Operators whose defaults depend on a method or preset: checked above, setting by setting.
PER_METHOD = {"inr.fit_sdf", "inr.fit_displacement", "inr.transfer_detail"}
# Operators where 0 stands for the chosen model's own value (the default model's is compared otherwise).
ZERO_IS_THE_MODELS = {"inr.fit_nerf"}


def _job_operators(addon):
    return [cls for cls in addon.operators.classes if getattr(cls, "job_name", "") and cls.bl_idname not in PER_METHOD]


def test_every_job_operators_defaults_are_its_jobs(addon):
    """An operator property named as a setting of the job it runs has the job's default, or its default preset's
    (its SKIP_SAVE copies of a field's settings too: those fall back to the field's value, checked below)."""
    from inr_blender.jobs import REGISTRY

    compared = 0
    for cls in _job_operators(addon):
        job = REGISTRY.get(cls.job_name)
        defaults = {p.name: p.default for p in job.spec.all_params()} | job.spec.defaults()
        props = _operator_props(cls.bl_idname)
        if "preset" in props and job.presets is not None:  # the default preset's values over the job's defaults
            defaults |= job.presets({})[props["preset"].default.lower()].values
        backend_of = {name: (name, defaults) for name in props if name in defaults and defaults[name] is not None}
        backend_of.pop("preview_every", None)  # see NOT_SETTINGS
        if cls.bl_idname in ZERO_IS_THE_MODELS:
            backend_of = {name: v for name, v in backend_of.items() if props[name].type not in ("INT", "FLOAT") or props[name].default != 0}
        skip = set(props) - set(backend_of)
        compared += _check(cls.bl_idname, backend_of, skip)
    assert compared >= 15


def test_every_field_settings_default_is_its_jobs(addon):
    """The field's per-capability settings (inr_field.skeleton.delta, ...) have the defaults of the job that reads them."""
    from inr_blender.jobs import REGISTRY

    compared, wrong = 0, []
    for cls in _job_operators(addon):
        spec = REGISTRY.get(cls.job_name).spec
        defaults = {p.name: p.default for p in spec.all_params()}
        for name, path in getattr(cls, "field_settings", {}).items():
            owner_path, _, attr = path.rpartition(".")
            group = bpy.types.Object.bl_rna.properties["inr_field"].fixed_type
            for part in owner_path.split(".") if owner_path else ():
                group = group.properties[part].fixed_type
            if name not in defaults or defaults[name] is None:
                continue
            compared += 1
            if not _same(group.properties[attr], defaults[name]):
                wrong.append(f"inr_field.{path} = {group.properties[attr].default!r}, job {cls.job_name}'s {name} = {defaults[name]!r}")
    assert not wrong, wrong
    assert compared >= 8

"""Transfer Detail: the detail of one displacement field onto the surface of another shape (Wang Yifan et al. 2022).

The active object is the target; the other selected object is the detail source (or name them
with ``target`` and ``source``). Each is a mesh or point cloud, or a field object: the source a
displacement field (Fit Displacement Field), the target any signed distance field. A mesh or
point cloud stands for the field fitted to it alone (the field whose record of sources is just
that object), when there is one with its checkpoint on disk; what has none is fitted first, in
the same chain of jobs, with the operator's fit settings: the source as a displacement field,
the target as a base-only one (both phases at 1: a smooth base).

Then ``transfer_detail`` makes the new field (the target's base displaced by the source's
detail, in the target's frame) and ``extract_mesh`` its surface. Both come into the scene beside
the target, shifted along +X by 1.2 times its width: the field object ``<target>_transfer``
(kind SDF, method IDF_TRANSFER; Extract Mesh re-extracts it in place) and its mesh
``<target>_transfer_mesh``. The fields fitted on the way are added too, so a second transfer
reuses them. One progress bar runs over the chain; Cancel, or a failure at any step, leaves the
scene as it was and removes the checkpoints the chain wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import bpy
from bpy.props import StringProperty
from mathutils import Matrix

from ..inr_blender.wire.client import Checkpoint, JobOutcome
from ..properties.common import for_operator, setting_paths
from ..properties.defaults import backend_name, enum_item
from ..properties.transfer import SETTINGS
from .common.bridge import InputError, create_mesh_object, make_active, object_geometry
from .common.displacement import DisplacementSettings, displacement_field, idf_param, is_base_only
from .common.field import (
    KIND_NAMES,
    FitPlan,
    checkpoints,
    defaults_from,
    field_checkpoint,
    field_fitted_to,
    new_checkpoint_path,
    new_field,
    plan_fit,
    require_normals,
)
from .common.job import JobOperator, JobSpec

SHIFT = 1.2  # the result sits this many target widths to the right (+X) of the target
GEOMETRY_TYPES = {"MESH", "POINTCLOUD"}
# The operator's settings and the target's (the panel's) that stand in when the caller does not set them.
FIELD_SETTINGS = setting_paths("transfer", SETTINGS)


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


@dataclass
class Role:
    """The detail source or the target: the object picked, the field that stands for it, or the fit that makes one."""

    name: str  # "source" or "target" (the transfer job's keys)
    obj: bpy.types.Object
    field: bpy.types.Object | None = None  # an existing field
    plan: FitPlan | None = None  # else the fit that makes it
    outcome: JobOutcome | None = None  # ... once it ran
    checkpoint: Checkpoint | None = None  # its weights for the transfer
    obj_name: str = ""
    field_name: str = ""

    @property
    def title(self) -> str:
        return "detail source" if self.name == "source" else "target"

    def remember(self) -> None:
        """Keep the names only: the objects may be deleted while the jobs run (see :meth:`recall`)."""
        self.obj_name, self.field_name = self.obj.name, self.field.name if self.field else ""
        self.obj = self.field = None

    def recall(self) -> None:
        """The objects again once the jobs are done, or :class:`InputError` if one was deleted meanwhile."""
        for name in (self.obj_name, self.field_name):
            if name and name not in bpy.data.objects:
                raise InputError(f"the {self.title} '{name}' was deleted while the jobs ran")
        self.obj = bpy.data.objects[self.obj_name]
        self.field = bpy.data.objects.get(self.field_name)


@dataclass
class Step:
    """One job of the chain: what it does (for the progress bar), its spec, and what takes its outcome."""

    label: str
    spec: Callable[[bpy.types.Context], JobSpec]
    receive: Callable[[JobOutcome], None]


class INR_OT_transfer_detail(DisplacementSettings, JobOperator, bpy.types.Operator):
    """Put the detail of the selected displacement field (or mesh) onto the active object's surface, as a new field and mesh beside it"""

    bl_idname = "inr.transfer_detail"
    menu_entry = ("displacement", 2, "MOD_DATA_TRANSFER")  # the Object menu: section, order, icon
    bl_label = "Transfer Detail"
    bl_options = {"UNDO"}  # no redo panel: redoing would refit what was missing
    dialog_width = 360

    source: StringProperty(
        name="Source", options={"SKIP_SAVE"}, description="The detail source's object name (default: the selected object that is not active)"
    )
    target: StringProperty(name="Target", options={"SKIP_SAVE"}, description="The target's object name (default: the active object)")
    # When not set, each comes from the target's own settings (the Transfer Detail box of the panel).
    strength: for_operator(SETTINGS["strength"])
    nu: for_operator(SETTINGS["nu"])
    mode: for_operator(SETTINGS["mode"])
    resolution: for_operator(SETTINGS["resolution"])
    # The fit settings (Fit Displacement Field's) apply to a source or target that has no field yet (the target's
    # base-only fit gets both phases at 1); ``nu`` is the transfer's here, so the fit's is ``fit_nu``.
    fit_nu: idf_param(
        "nu",
        min=1e-4,
        soft_max=0.2,
        precision=3,
        description="Width of the shell around the base where the detail acts, for a displacement field fitted first (published 0.05)",
    )
    _groups = tuple((title, tuple("fit_nu" if n == "nu" else n for n in names)) for title, names in DisplacementSettings._groups)

    def method_params(self, values: dict[str, Any]) -> dict[str, Any]:
        return dict(super().method_params(values), nu=self.fit_nu)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.mode == "OBJECT"

    # -- picking the two objects ---------------------------------------------------------
    def _object(self, name: str, which: str) -> bpy.types.Object:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise InputError(f"there is no object '{name}' to use as the {which}")
        return obj

    def pick(self, context: bpy.types.Context) -> tuple[bpy.types.Object, bpy.types.Object]:
        """(source, target): the named objects, else the selected one that is not active and the active one."""
        target = self._object(self.target, "target") if self.target else context.active_object
        if target is None:
            raise InputError("no active object: make the target active and select the detail source too")
        if self.source:
            source = self._object(self.source, "detail source")
        else:
            others = [o for o in context.selected_objects if o != target]
            if not others:
                raise InputError(
                    f"Transfer Detail needs two objects and only '{target.name}' is given: select the detail source too, with the target active"
                )
            if len(others) > 1:
                raise InputError(
                    f"Transfer Detail needs exactly two objects, the detail source and the target (active): {len(others) + 1} are selected"
                )
            source = others[0]
        if source == target:
            raise InputError(f"the detail source and the target are the same object '{target.name}': pick two objects")
        return source, target

    def role(self, obj: bpy.types.Object, which: str) -> Role:
        """What stands for ``obj`` as the source or the target: its field, the field fitted to it, or nothing yet."""
        s = obj.inr_field
        if s.is_field:
            if s.kind != "SDF":
                raise InputError(f"'{obj.name}' is {KIND_NAMES.get(s.kind, s.kind)}: Transfer Detail needs signed distance fields")
            if which == "source" and s.method != "IDF":
                method = s.bl_rna.properties["method"].enum_items[s.method].name
                raise InputError(f"the detail source '{obj.name}' is not a displacement field ({method}): fit its object with Fit Displacement Field")
            if which == "source" and is_base_only(obj):
                raise InputError(f"the detail source '{obj.name}' is a base-only displacement field: it has no detail to transfer")
            return Role(which, obj, field=obj)
        if obj.type not in GEOMETRY_TYPES:
            raise InputError(
                f"the {Role(which, obj).title} '{obj.name}' is {_a(obj.type.lower())}: pick a mesh, a point cloud or a signed distance field"
            )
        if which == "source":
            return Role(which, obj, field=field_fitted_to(obj, lambda f: f.inr_field.method == "IDF" and not is_base_only(f)))
        return Role(which, obj, field=field_fitted_to(obj))

    def roles(self, context: bpy.types.Context) -> tuple[Role, Role]:
        source, target = self.pick(context)
        return self.role(source, "source"), self.role(target, "target")

    # -- the dialog: only when something must be fitted first ---------------------------------
    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        try:
            missing = [r for r in self.roles(context) if r.field is None]
        except InputError:
            missing = []  # execute reports why
        if bpy.app.background or not missing:
            return self.execute(context)
        self._missing = [f"'{r.obj.name}'" + (" (its base)" if r.name == "target" else "") for r in missing]
        return context.window_manager.invoke_props_dialog(self, width=self.dialog_width)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        for name in FIELD_SETTINGS:
            layout.prop(self, name)
        missing = getattr(self, "_missing", [])
        if missing:
            layout.label(text=f"Fits first: {', '.join(missing)}", icon="INFO")
            self.draw_displacement(layout)

    # -- the chain ------------------------------------------------------------------------------
    def first_job(self, context: bpy.types.Context) -> JobSpec:
        source, target = self.roles(context)
        defaults_from(self, target.obj.inr_field, FIELD_SETTINGS)
        self._checkpoints = checkpoints(context)
        self._source, self._target, self._written = source, target, []
        self._name = f"{target.obj.name}_transfer"
        values = self.settings()
        steps = []
        for role in (source, target):
            if role.field is not None:
                role.checkpoint = field_checkpoint(context, role.field)
                continue
            arrays, names = object_geometry(context, [role.obj])
            require_normals(arrays, "A displacement field", f"give '{role.obj.name}' normals (a normal point attribute), or pick a mesh")
            params = self.job_params(values) if role is source else self.base_only_params(values)
            role.plan = plan_fit(context, arrays, names, "IDF", "IDF", self.preset, params)
            label = f"fitting '{role.obj.name}'" + (" (its base)" if role is target else "")
            steps.append(Step(label, lambda _c, plan=role.plan: ("fit_sdf", plan.params, plan.arrays), lambda o, role=role: self._fitted(role, o)))
        steps.append(Step("transferring the detail", self._transfer_job, self._transferred))
        steps.append(Step("extracting the surface", self._extract_job, lambda o: None))
        self._steps, self._stages = steps, len(steps)
        source.remember()
        target.remember()
        return self._next(context)

    def next_job(self, context: bpy.types.Context, outcome: JobOutcome) -> JobSpec | None:
        self._steps.pop(0).receive(outcome)
        return self._next(context) if self._steps else None

    def _next(self, context: bpy.types.Context) -> JobSpec:
        self._stage_label = self._steps[0].label
        return self._steps[0].spec(context)

    def _fitted(self, role: Role, outcome: JobOutcome) -> None:
        role.outcome = outcome
        role.checkpoint = self._checkpoints.result(outcome, role.plan.path)  # the field stores it when it is made
        self._written.append(role.plan.path)

    def _transfer_job(self, context: bpy.types.Context) -> JobSpec:
        path, self._stored_path = new_checkpoint_path(self._name)
        self._record = {"strength": self.strength, "nu": self.nu, "mode": backend_name(self.mode)}
        params: dict[str, Any] = dict(self._record)
        arrays: dict[str, np.ndarray] = {}
        for role in (self._source, self._target):
            given, sent = role.checkpoint.job_input(f"{role.name}_checkpoint", path_param=f"{role.name}_checkpoint")
            params.update(given)
            arrays.update(sent)
        params.update(self._checkpoints.output(path))
        return "transfer_detail", params, arrays

    def _transferred(self, outcome: JobOutcome) -> None:
        self._transfer = outcome
        self._transferred_checkpoint = self._checkpoints.result(outcome, outcome.params["checkpoint_path"])
        self._written.append(outcome.params["checkpoint_path"])

    def _extract_job(self, context: bpy.types.Context) -> JobSpec:
        params = {"resolution": self.resolution, "space": "local", "method": "sparse"}
        given, sent = self._transferred_checkpoint.job_input()
        return "extract_mesh", dict(params, **given), sent

    # -- the result -----------------------------------------------------------------------------
    def finish(self, context: bpy.types.Context, outcome: JobOutcome, created: list) -> None:
        source, target = self._source, self._target
        for role in (source, target):
            role.recall()
        for role in (source, target):
            if role.plan is not None:
                role.field = displacement_field(context, role.plan, role.outcome, created)
        context.view_layer.update()  # the new fields' matrix_world from their location and scale
        frame = target.field.matrix_world.copy()  # where the target's field is now (the transfer is in its frame)
        vertices = outcome.arrays["vertices"]
        offset = Matrix.Translation((SHIFT * self._width(context, target, frame, vertices), 0.0, 0.0))

        field = new_field(context, self._name, self._transfer, self._stored_path, [], self._record, created)
        field.matrix_world = offset @ frame
        field.inr_field.kind, field.inr_field.method = "SDF", "IDF_TRANSFER"
        s = field.inr_field.transfer
        s.source, s.target = source.field.name, target.field.name
        result = self._transfer.params
        s.strength_used, s.nu_used, s.mode_used = float(result["strength"]), float(result["nu"]), enum_item(str(result["mode"]))
        mesh = create_mesh_object(
            context, f"{field.name}_mesh", vertices, outcome.arrays["faces"], outcome.arrays.get("normals"), field.matrix_world.copy()
        )
        created.append(mesh)
        make_active(context, mesh)
        fitted = [f"'{r.field.name}'" for r in (source, target) if r.plan is not None]
        first = f"; fitted {' and '.join(fitted)} first" if fitted else ""
        self.report(
            {"INFO"},
            f"Transferred the detail of '{source.field.name}' onto '{target.field.name}' (strength {s.strength_used:g}, ν {s.nu_used:g}, "
            f"{s.mode_used.lower()}): '{mesh.name}' with {len(vertices)} vertices{first}",
        )

    @staticmethod
    def _width(context: bpy.types.Context, target: Role, frame: Matrix, vertices: np.ndarray) -> float:
        """The target's world width along X: its bounding box; for a field, that of its surface (the transferred one's)."""
        if target.obj.type in GEOMETRY_TYPES:
            evaluated = target.obj.evaluated_get(context.evaluated_depsgraph_get())
            points, m = np.array(evaluated.bound_box), np.array(evaluated.matrix_world)
        else:
            points, m = vertices, np.array(frame)
        corners = points @ m[:3, :3].T + m[:3, 3]
        width = float(np.ptp(corners[:, 0])) if len(corners) else 0.0
        return width if width > 0 else 2.0 * float(frame.to_scale()[0])  # no surface: the field's domain

"""PropertyGroups: a field object's settings and state, the running job, the backend status."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, PointerProperty, StringProperty

SDF_METHODS = [
    ("IGR", "IGR", "Softplus MLP with geometric initialisation and an eikonal loss (Gropp 2020)"),
    ("SIREN", "SIREN", "Sine-activation MLP with an off-surface term (Sitzmann 2020); needs normals"),
    ("HASHGRID", "Hash Grid", "Multiresolution hash-grid encoding with a small MLP (Instant-NGP, Müller 2022), IGR's losses"),
    ("NEURAL_SKELETON", "Neural Skeleton",
     "SIREN 6x64 with a total-variation (TV) term that puts the gradient norm's minima on the medial axis "
     "(Clémot & Digne 2023): the field for Extract Skeleton; needs normals"),
]
# Implicit displacement fields (Wang Yifan 2022): what Fit Displacement Field and Transfer Detail make.
# Not Fit SDF's methods: each has its own operator.
DISPLACEMENT_METHODS = [
    ("IDF", "Displacement",
     "Implicit displacement field (Wang Yifan 2022): a smooth SIREN base plus a high-frequency SIREN detail along its normals"),
    ("IDF_TRANSFER", "Transferred Detail", "The detail of one displacement field on the base of another field (Transfer Detail)"),
]
# Shape spaces (DeepSDF auto-decoders, Park 2019; occupancy networks, Mescheder 2019): what Fit Shape Space
# makes, and the completed shape Reconstruct from Scan keeps as an ordinary field.
SHAPE_SPACE_METHODS = [
    ("DEEPSDF", "DeepSDF", "Auto-decoder of signed distances (Park 2019): one latent code per shape, one decoder for all"),
    ("OCCUPANCY", "Occupancy", "Auto-decoder of inside/outside probabilities (occupancy networks, Mescheder 2019)"),
]
LATENT_SHAPE_METHODS = [
    ("LATENT_SHAPE", "Completed Shape", "A shape decoded from a shape space's code (Reconstruct from Scan)"),
]
FIELD_METHODS = SDF_METHODS + DISPLACEMENT_METHODS + SHAPE_SPACE_METHODS + LATENT_SHAPE_METHODS
INTERPOLATE_OUTPUTS = [
    ("AUTO", "Auto", "Shape keys when every in-between's vertices follow the first mesh's without folding, else a sequence"),
    ("ROW", "Row", "One mesh per in-between shape, in a row along +X"),
    ("SHAPE_KEYS", "Shape Keys", "One mesh with a shape key per in-between shape, animated over the frames"),
    ("SEQUENCE", "Sequence", "One mesh per in-between shape, each visible on its own frames"),
]
TRANSFER_MODES = [
    ("PROJECTED", "Projected", "Read the detail at the closest point of the source's base, so it lands on the target's surface"),
    ("ALIGNED", "Aligned", "Read the detail at the same local coordinates (the shapes must overlap in their fields' frames)"),
]
NERF_MODELS = [
    ("FAST", "Fast", "Hash-grid density with a small colour MLP and an occupancy grid (in the spirit of Instant-NGP, Müller 2022)"),
    ("CLASSIC", "Classic", "NeRF as published (Mildenhall 2020): positional encoding, 8x256 MLP, coarse and fine samples; slow"),
]
# Range analysis (Sharp & Jacobson 2022) for the guaranteed queries: the backend's modes (inr_blender/ranges/affine.py).
RANGE_MODES = [
    ("affine_all", "Affine (All Symbols)", "Affine arithmetic keeping every error symbol: the tightest bounds, the most memory (the default)"),
    ("affine_append", "Affine (Append)", "Affine arithmetic with a few new symbols per layer, the other errors folded into intervals"),
    ("affine_truncate", "Affine (Truncate)", "Affine arithmetic keeping only the largest symbols"),
    ("affine_fixed", "Affine (Fixed)", "Affine arithmetic with one symbol per input axis"),
    ("interval", "Interval", "Interval arithmetic: the cheapest and the loosest bounds"),
]
RAYCAST_METHODS = [
    ("RANGES", "Guaranteed", "Frustum casting with range analysis: the first hit of every ray, on any field (distance field or not)"),
    ("SPHERE_TRACING", "Sphere Tracing", "Steps of |f| / Lipschitz along each ray: fast, but sound on distance fields only (may step over thin parts)"),
]
INTERSECTION_VERDICTS = [
    ("NONE", "Not Checked", "No intersection check yet"),
    ("DISJOINT", "Disjoint", "Range analysis certifies that the surfaces do not meet inside the region"),
    ("INTERSECTING", "Intersecting", "The surfaces meet: a witness point lies on both"),
    ("UNKNOWN", "Unknown", "Neither certified apart nor a witness found at the deepest level: the remaining boxes show where to look"),
]
FIELD_KINDS = [
    ("SDF", "Signed Distance", "A signed distance field"),
    ("NERF", "Radiance Field", "A radiance field (NeRF): density and colour, fitted to posed images"),
    ("SHAPE_SPACE", "Shape Space", "A space of shapes (DeepSDF auto-decoder): one latent code per training shape"),
]


class INR_PG_loss_sample(bpy.types.PropertyGroup):
    step: IntProperty(name="Step")
    loss: FloatProperty(name="Loss")


class INR_PG_shape(bpy.types.PropertyGroup):
    """One training shape of a shape space (``INR_PG_field.shapes``); ``name`` is its object's name."""

    source: PointerProperty(name="Object", type=bpy.types.Object, description="The object the shape was fitted to")
    index: IntProperty(name="Index", description="The shape's code in the space")
    center: FloatVectorProperty(name="Center", size=3, subtype="XYZ", description="Where the shape's normalised frame sits in world space")
    scale: FloatProperty(name="Scale", default=1.0, description="World units per unit of the shape's normalised frame")
    error: FloatProperty(name="Error", precision=5, description="Chamfer-L1 of the decoded shape against its mesh, in world units")
    has_error: BoolProperty(name="Measured", default=False)


class INR_PG_field(bpy.types.PropertyGroup):
    """Stored on the Empty that stands for a fitted field (``Object.inr_field``)."""

    is_field: BoolProperty(name="Is Field", default=False)
    kind: EnumProperty(name="Kind", items=FIELD_KINDS, default="SDF")
    method: EnumProperty(name="Method", items=FIELD_METHODS, default="IGR")
    checkpoint: StringProperty(
        name="Checkpoint", subtype="FILE_PATH", options={"PATH_SUPPORTS_BLEND_RELATIVE"}, description="The field's weights; relative to the .blend once saved"
    )
    sources: StringProperty(name="Fitted To", description="The objects the field was fitted to")
    sources_json: StringProperty(name="Fitted To (JSON)", description="The names of the objects the field was fitted to, as a JSON list")
    settings_json: StringProperty(name="Training Settings", description="Every training parameter, as JSON")
    loss_history: CollectionProperty(type=INR_PG_loss_sample)
    final_loss: FloatProperty(name="Final Loss")
    iterations: IntProperty(name="Iterations")
    num_points: IntProperty(name="Points")
    has_normals: BoolProperty(name="Normals")
    train_seconds: FloatProperty(name="Training Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    device: StringProperty(name="Device")
    preset: StringProperty(name="Preset", description="The Fit SDF preset it was trained with")
    stop_reason: StringProperty(name="Stopped", description="Why training stopped: converged, time limit or iteration limit")
    # quality against the objects it was fitted to (Evaluate Field)
    has_metrics: BoolProperty(name="Evaluated", default=False)
    chamfer_l1: FloatProperty(name="Chamfer-L1", description="Mean of the two directed mean distances, as a fraction of the input's bounding-sphere radius", precision=5)
    normal_consistency: FloatProperty(name="Normal Consistency", description="Mean |cos| between nearest-neighbour normals (1 is perfect)", precision=4)
    fscore: FloatProperty(name="F-score", description="F-score at 1% of the bounding-sphere radius (1 is perfect)", precision=4)
    hausdorff: FloatProperty(name="Hausdorff", description="Two-sided Hausdorff distance, as a fraction of the bounding-sphere radius", precision=4)
    metrics_resolution: IntProperty(name="Evaluated At", description="Extraction resolution the metrics were measured at")
    # radiance fields (kind NERF)
    nerf_model: EnumProperty(name="Model", items=NERF_MODELS, default="FAST")
    views_path: StringProperty(
        name="Views", subtype="FILE_PATH", options={"PATH_SUPPORTS_BLEND_RELATIVE"}, description="The transforms.json (or its folder) the field was fitted to"
    )
    num_views: IntProperty(name="Training Views", description="Views the field was trained on (held-out views aside)")
    num_holdout: IntProperty(name="Held-out Views", description="Views kept out of training to measure PSNR and SSIM")
    image_width: IntProperty(name="Image Width", subtype="PIXEL")
    image_height: IntProperty(name="Image Height", subtype="PIXEL")
    psnr: FloatProperty(name="PSNR", description="Mean PSNR (dB) on the held-out views", precision=2)
    ssim: FloatProperty(name="SSIM", description="Mean SSIM on the held-out views (1 is perfect)", precision=4)
    train_psnr: FloatProperty(name="Train PSNR", description="Mean PSNR (dB) on the training views", precision=2)
    eval_history_json: StringProperty(name="PSNR History", description="Held-out PSNR during training: [[step, seconds, psnr], ...] as JSON")
    background: FloatVectorProperty(name="Background", subtype="COLOR", size=3, min=0.0, max=1.0, default=(1.0, 1.0, 1.0), description="The colour behind transparent pixels, in training and in renders")
    density_threshold: FloatProperty(name="Density Threshold", default=25.0, min=1e-3, description="Density of the surface Extract Mesh uses (the fit suggests one)")
    # Extract Skeleton: its settings (the panel's; the operator's when it does not set them) ...
    skeleton_delta: FloatProperty(
        name="δ", default=0.02, min=1e-4, soft_max=0.2, precision=3,
        description="Coverage tolerance, as a fraction of the shape's longest half-extent: larger gives fewer medial spheres, a coarser skeleton",
    )
    skeleton_surface_samples: IntProperty(name="Surface Samples", default=2000, min=16, soft_max=20000, description="Points spread on the field's surface that the medial spheres must cover")
    skeleton_time_limit: FloatProperty(
        name="MILP Time Limit", default=60.0, min=0.1, soft_max=600.0, subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE",
        description="Most time for the set-cover solver; past it the best cover found is used (not proven optimal)",
    )
    skeleton_spheres: BoolProperty(name="Medial Spheres", default=True, description="Also add an object that shows each skeletal point's medial sphere (geometry nodes)")
    # ... and what the last one found
    has_skeleton: BoolProperty(name="Skeleton Extracted", default=False)
    skeleton_vertices: IntProperty(name="Skeletal Points")
    skeleton_edges: IntProperty(name="Skeleton Edges", description="Every edge of the complex, triangles' sides included")
    skeleton_triangles: IntProperty(name="Skeleton Triangles")
    skeleton_candidates: IntProperty(name="Candidates", description="Skeletal points traced from the surface, before the cover selected some")
    skeleton_optimal: BoolProperty(name="Optimal Cover", description="The set cover was solved to optimality (within the relative gap)")
    skeleton_cover_message: StringProperty(name="Cover", description="What the set-cover solver reported")
    skeleton_uncovered: IntProperty(name="Uncovered Samples", description="Surface samples no candidate covers (left out of the cover)")
    skeleton_seconds: FloatProperty(name="Skeleton Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    skeleton_delta_used: FloatProperty(name="δ Used", precision=3, description="The δ of the last skeleton")
    # Sample Iso-points: its settings (the panel's; the operator's when it does not set them) ...
    isopoints_count: IntProperty(
        name="Points", default=5000, min=1, max=2_000_000_000, soft_max=200000,
        description="Points to project onto the field's zero level set (those that do not converge are dropped)",
    )
    isopoints_resample: BoolProperty(name="Resample", default=True, description="Spread the points evenly over the surface (tangential repulsion)")
    isopoints_upsample: IntProperty(name="Upsample", default=0, min=0, soft_max=200000, description="Points to add by edge-aware upsampling, where the surface bends most (0: none)")
    isopoints_radius: FloatProperty(
        name="Point Radius", default=0.0, min=0.0, soft_max=0.1, precision=4, subtype="DISTANCE", unit="LENGTH",
        description="Radius the points are shown and rendered with, in world units; 0: half the median spacing between neighbouring points",
    )
    # ... and what the last one found
    has_isopoints: BoolProperty(name="Iso-points Sampled", default=False)
    isopoints_points: IntProperty(name="Iso-points", description="Points on the surface, upsampled ones included")
    isopoints_discarded: IntProperty(name="Discarded", description="Points that did not converge to the surface and were dropped")
    isopoints_upsampled: IntProperty(name="Upsampled", description="Points added by edge-aware upsampling")
    isopoints_spacing_cv: FloatProperty(name="Spacing CV", precision=3, description="Coefficient of variation of the nearest-neighbour spacing (0: perfectly even)")
    isopoints_seconds: FloatProperty(name="Iso-points Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    isopoints_radius_used: FloatProperty(name="Radius Used", precision=4, subtype="DISTANCE", unit="LENGTH", description="The display radius of the last iso-points, in world units")
    # Transfer Detail: its settings, on the target (a mesh, point cloud or field; the operator's when it does not set them) ...
    transfer_strength: FloatProperty(
        name="Strength", default=1.0, soft_min=0.0, soft_max=2.0,
        description="Scale of the transferred detail: 0 gives the target's base, 1 the source's detail as it is",
    )
    transfer_nu: FloatProperty(
        name="ν", default=0.0, min=0.0, soft_max=0.2, precision=3,
        description="Width of the band around the base where the detail acts, in the field's local units (0: the source's)",
    )
    transfer_mode: EnumProperty(name="Mode", items=TRANSFER_MODES, default="PROJECTED", description="Where the detail is read on the source")
    transfer_resolution: IntProperty(name="Resolution", default=128, min=8, max=8192, soft_max=1024, description="Extraction grid of the transferred surface")
    # ... and, on a transferred field, what made it
    detail_source: StringProperty(name="Detail From", description="The displacement field whose detail was transferred")
    detail_target: StringProperty(name="Base From", description="The field whose base received the detail")
    detail_strength: FloatProperty(name="Strength Used")
    detail_nu: FloatProperty(name="ν Used", precision=3)
    detail_mode: StringProperty(name="Mode Used")
    # Range queries (Cast Rays from Camera, Closest Points, Check Intersection): their settings ...
    range_mode: EnumProperty(name="Range Mode", items=RANGE_MODES, default="affine_all", description="The range arithmetic the guaranteed queries bound the field with")
    raycast_method: EnumProperty(name="Ray Casting", items=RAYCAST_METHODS, default="RANGES", description="How Cast Rays from Camera finds each ray's first hit")
    # ... and what the last ones found
    has_raycast: BoolProperty(name="Rays Cast", default=False)
    raycast_hits: IntProperty(name="Hits", description="Rays of the last Cast Rays from Camera that hit the surface")
    raycast_rays: IntProperty(name="Rays", description="Rays of the last Cast Rays from Camera (its pixels)")
    raycast_used: StringProperty(name="Method Used", description="The method of the last Cast Rays from Camera")
    raycast_seconds: FloatProperty(name="Ray Casting Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    has_closest: BoolProperty(name="Closest Points Found", default=False)
    closest_count: IntProperty(name="Queries", description="Query points of the last Closest Points")
    closest_min: FloatProperty(name="Nearest", precision=4, subtype="DISTANCE", unit="LENGTH", description="The smallest distance to the surface of the last Closest Points")
    closest_max: FloatProperty(name="Farthest", precision=4, subtype="DISTANCE", unit="LENGTH", description="The largest distance to the surface of the last Closest Points")
    closest_seconds: FloatProperty(name="Closest Points Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    intersection_verdict: EnumProperty(name="Verdict", items=INTERSECTION_VERDICTS, default="NONE", description="What the last Check Intersection found")
    intersection_other: StringProperty(name="Checked Against", description="The field or mesh of the last Check Intersection")
    intersection_boxes: IntProperty(name="Boxes", description="Boxes the last Check Intersection could not rule out")
    intersection_seconds: FloatProperty(name="Intersection Time", subtype="TIME_ABSOLUTE", unit="TIME_ABSOLUTE")
    # Fit Displacement Field: its phases, as fractions of the run (the base alone, then the detail alone, then both)
    phase_base: FloatProperty(name="Base Phase", min=0.0, max=1.0, subtype="FACTOR", description="The base trained alone before this fraction of the run")
    phase_detail: FloatProperty(name="Detail Phase", min=0.0, max=1.0, subtype="FACTOR", description="The detail trained alone until this fraction of the run, then both")
    # Shape spaces (kind SHAPE_SPACE): the training shapes, one per code, and the panel's selection ...
    shapes: CollectionProperty(type=INR_PG_shape)
    active_shape: IntProperty(name="Shape", min=0, description="The shape Extract Mesh decodes, and the first of Interpolate Shapes")
    latent_size: IntProperty(name="Latent Size", description="Length of each shape's code")
    # ... Interpolate Shapes' settings (the operator's when it does not set them) ...
    interpolate_to: IntProperty(name="To", default=1, min=0, description="The shape Interpolate Shapes ends at (its index in the list)")
    interpolate_count: IntProperty(name="Shapes", default=5, min=2, soft_max=64, description="Shapes from the first to the second, both included")
    interpolate_output: EnumProperty(name="Output", items=INTERPOLATE_OUTPUTS, default="AUTO", description="What Interpolate Shapes makes")
    interpolate_resolution: IntProperty(name="Resolution", default=96, min=8, max=1024, description="Extraction grid of each in-between shape")
    # ... Reconstruct from Scan's ...
    reconstruct_iterations: IntProperty(name="Iterations", default=800, min=1, soft_max=10000, description="Steps that fit a code to the scan")
    reconstruct_resolution: IntProperty(name="Resolution", default=128, min=8, max=1024, description="Extraction grid of the completed shape")
    # ... and, on a completed shape's field (method LATENT_SHAPE), where it came from
    completed_from: StringProperty(name="From Space", description="The shape space whose code was fitted to the scan")
    completed_fit_error: FloatProperty(name="Fit Error", precision=5, description="Mean |f| at the scan's points, in the space's local units")


class INR_PG_job(bpy.types.PropertyGroup):
    """The job in flight (``WindowManager.inr_job``), drawn by the panel and status bar."""

    running: BoolProperty(default=False)
    name: StringProperty()
    progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    step: IntProperty()
    total: IntProperty()
    loss: FloatProperty()
    has_loss: BoolProperty()
    psnr: FloatProperty()
    has_psnr: BoolProperty()
    message: StringProperty()
    cancel_requested: BoolProperty(default=False)


class INR_PG_backend(bpy.types.PropertyGroup):
    """What the last backend check found (``WindowManager.inr_backend``)."""

    ready: BoolProperty(default=False)
    status: StringProperty()
    torch_version: StringProperty()
    device: StringProperty()
    setup_running: BoolProperty(default=False)
    setup_progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    setup_message: StringProperty()


classes = (INR_PG_loss_sample, INR_PG_shape, INR_PG_field, INR_PG_job, INR_PG_backend)

_POINTERS = (
    (bpy.types.Object, "inr_field", INR_PG_field),
    (bpy.types.WindowManager, "inr_job", INR_PG_job),
    (bpy.types.WindowManager, "inr_backend", INR_PG_backend),
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    for owner, attr, group in _POINTERS:
        setattr(owner, attr, PointerProperty(type=group))


def unregister() -> None:
    for owner, attr, _group in reversed(_POINTERS):
        delattr(owner, attr)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)

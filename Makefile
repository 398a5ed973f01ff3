# Two commands do all the set-up on a machine with Python 3.11:
#   make demo   # headless Blender: fit Suzanne, extract, save demo_out/demo.blend + demo_out/demo.png
#   make test   # the test suite
# Each creates .venv with the pinned versions in requirements-dev.txt first. More targets:
#   make test-fast     # the tests not marked slow (tests/pytest.ini): a sample of every area, about a minute
#   make test-backend  # the backend and wire tests only (these need no bpy)
#   make lint          # ruff check, ruff format --check, mypy on inr_blender/ (configured in pyproject.toml)
#   make format        # ruff format, then ruff check --fix
#   make gallery       # the README's pictures in docs/gallery/ (docs/gallery/make_gallery.py)
#   make gpu-data      # .gpu_data/: the data and pytest that bench/gpu_check.sh needs on a GPU machine

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements-dev.txt | cut -d' ' -f1)
BLENDER_EXT = $(shell $(PY) -c "import importlib.util, pathlib; print(next(pathlib.Path(importlib.util.find_spec('bpy').origin).parent.glob('*/scripts/addons_core/bl_pkg/cli/blender_ext.py')))")

.PHONY: venv demo test test-fast test-backend lint format extension clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt
	$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11), 'bpy 4.5 needs Python 3.11, found ' + sys.version"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(PY) demo.py --output demo_out

test: $(STAMP)
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

test-backend: $(STAMP)
	$(PY) -m pytest tests/backend tests/wire

# All three checks run; the target fails if any of them found something.
lint: $(STAMP)
	@status=0; \
	$(PY) -m ruff check . || status=1; \
	$(PY) -m ruff format --check . || status=1; \
	$(PY) -m mypy || status=1; \
	exit $$status

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

extension: $(STAMP)
	mkdir -p dist
	$(PY) $(BLENDER_EXT) validate .
	$(PY) $(BLENDER_EXT) build --source-dir . --output-dir dist

# The README's pictures (docs/gallery/make_gallery.py; needs ../shared/data): the NeRF view, the iso-points
# and the skeleton are regenerated, the others reused from bench/results. GALLERY_ARGS="--reuse sdf shape-space"
# regenerates the transfer too; the Poisson comparison needs open3d, the shape space an hour of training.
GALLERY_ARGS ?= --reuse sdf transfer shape-space

.PHONY: gallery

gallery: $(STAMP)
	$(PY) docs/gallery/make_gallery.py $(GALLERY_ARGS)

clean:
	rm -rf $(VENV) dist demo_out .pytest_cache .mypy_cache .ruff_cache

# Benchmark against Open3D's screened Poisson (bench/sdf_vs_poisson.py) in its own venv,
# .venv-bench: the dev requirements plus open3d. Pass options with BENCH_ARGS="--resume ...".
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat requirements-dev.txt bench/requirements.txt | cksum | cut -d' ' -f1)
BENCH_ARGS ?=

.PHONY: bench-venv bench bench-nerf

bench-venv: $(BENCH_STAMP)

$(BENCH_STAMP): requirements-dev.txt bench/requirements.txt
	$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11), 'bpy 4.5 needs Python 3.11, found ' + sys.version"
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -r bench/requirements.txt
	rm -f $(BENCH_VENV)/.installed-*
	touch $@

bench: $(BENCH_STAMP)
	ldconfig -p | grep -q libusb-1.0 || (apt-get update && apt-get install -y libusb-1.0-0)
	$(BENCH_PY) bench/sdf_vs_poisson.py $(BENCH_ARGS)

# Radiance fields on lego: fast hash-grid field against classic NeRF (bench/nerf_lego.py).
bench-nerf: $(BENCH_STAMP)
	$(BENCH_PY) bench/nerf_lego.py $(BENCH_ARGS)

# .gpu_data/: what bench/gpu_check.sh needs on a GPU machine that has no network (about 60 MiB, under the 64 MiB a
# device call carries): the five benchmark meshes, lego's training views, and pytest as pure-Python packages.
GPU_MESHES := stanford-bunny armadillo dragon-10k fandisk nefertiti
SHARED_DATA ?= ../shared/data

.PHONY: gpu-data

gpu-data: $(STAMP)
	rm -rf .gpu_data && mkdir -p .gpu_data/meshes .gpu_data/nerf/lego
	for m in $(GPU_MESHES); do cp $(SHARED_DATA)/meshes/$$m.obj .gpu_data/meshes/ || exit 1; done
	cp -r $(SHARED_DATA)/nerf/lego/train $(SHARED_DATA)/nerf/lego/transforms_train.json .gpu_data/nerf/lego/
	$(PY) -m pip install --quiet --no-compile --target .gpu_data/site pytest
	rm -rf .gpu_data/site/bin
	du -sh .gpu_data

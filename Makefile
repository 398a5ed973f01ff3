# Two commands do all the set-up on a machine with Python 3.11:
#   make demo   # headless Blender: fit Suzanne, extract, save demo_out/demo.blend + demo_out/demo.png
#   make test   # the test suite
# Each creates .venv with the pinned versions in requirements-dev.txt first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements-dev.txt | cut -d' ' -f1)
BLENDER_EXT = $(shell $(PY) -c "import importlib.util, pathlib; print(next(pathlib.Path(importlib.util.find_spec('bpy').origin).parent.glob('*/scripts/addons_core/bl_pkg/cli/blender_ext.py')))")

.PHONY: venv demo test extension clean

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

extension: $(STAMP)
	mkdir -p dist
	$(PY) $(BLENDER_EXT) validate .
	$(PY) $(BLENDER_EXT) build --source-dir . --output-dir dist

clean:
	rm -rf $(VENV) dist demo_out .pytest_cache

# The whole set-up is `make book` and `make test`: each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := book,test,export

.PHONY: test lint book lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The unit tests, then every notebook of the book executed on a fresh kernel (nbval, lax: errors fail).
test: lint
	$(PY) -m pytest
	$(PY) -m pytest --nbval-lax --nbval-current-env book/

# BOOKFLAGS: e.g. --params FILE (notebook parameters) or --only NAME.
book: $(STAMP)
	$(PY) book/tools/build.py $(BOOKFLAGS)

# The notebooks' python3 kernel is the one .venv provides (share/jupyter/kernels): nothing is installed elsewhere.
lab: $(STAMP)
	JUPYTER_PREFER_ENV_PATH=1 $(VENV)/bin/jupyter lab --ServerApp.root_dir=book

clean:
	rm -rf _build .pytest_cache .ruff_cache

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

test: lint
	$(PY) -m pytest

book: $(STAMP)
	$(PY) -m agrnet.bookbuild

lab: $(STAMP)
	$(PY) -m ipykernel install --user --name agrnet --display-name "Python (agrnet)"
	$(VENV)/bin/jupyter lab book/

clean:
	rm -rf _build .pytest_cache .ruff_cache

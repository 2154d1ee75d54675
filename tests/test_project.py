"""The project's own set-up: one source of truth for dependencies, and a working command line."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml
from conftest import REPO


def test_environment_yml_installs_the_package_with_every_extra():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [dep for dep in environment["dependencies"] if isinstance(dep, str)]
    pip = [dep for dep in environment["dependencies"] if isinstance(dep, dict)]
    assert {re.split(r"[=<>]", dep)[0] for dep in conda} == {"python", "pip"}, "packages belong in pyproject.toml"
    assert len(pip) == 1 and len(pip[0]["pip"]) == 1, "environment.yml must install the package alone through pip"
    editable = re.fullmatch(r"-e \.\[([\w,-]+)\]", pip[0]["pip"][0])
    assert editable, "environment.yml must pip-install the package itself with its extras"
    assert set(editable.group(1).split(",")) == set(pyproject["project"]["optional-dependencies"])
    python = next(dep for dep in conda if dep.startswith("python="))
    minimum = re.search(r">=\s*(\d+\.\d+)", pyproject["project"]["requires-python"]).group(1)
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_makefile_installs_the_same_extras():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    makefile = (REPO / "Makefile").read_text()
    extras = re.search(r"^EXTRAS := (.+)$", makefile, flags=re.MULTILINE).group(1).split(",")
    assert set(extras) == set(pyproject["project"]["optional-dependencies"])


def test_agrnet_help_lists_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "agrnet", "--help"], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert "usage: agrnet" in result.stdout
    assert "complexity" in result.stdout


def test_agrnet_complexity_prints_the_table():
    result = subprocess.run(
        [sys.executable, "-m", "agrnet", "complexity", "--backbone", "resnet18", "--size", "64", "64"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "graph reasoning" in result.stdout and "baseline" in result.stdout

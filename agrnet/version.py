"""The version of the installed agrnet distribution, read from its metadata (``pyproject.toml`` sets it).

A module of its own, so that the modules that record the version import it without importing the package root.
"""

from importlib.metadata import version

__version__ = version("agrnet")

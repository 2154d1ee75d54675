"""AGRNet: adaptive graph representation learning and reasoning for face parsing."""

__version__ = "0.1.0"

"""AGRNet: adaptive graph representation learning and reasoning for face parsing (Te et al., IEEE TIP 2021)."""

from agrnet.data.labels import CELEBAMASK_HQ, FASSEG, HELEN, LAPA, LIP, LabelSchema, get_schema
from agrnet.model import AGRNet, AGRNetConfig, AGRNetOutput
from agrnet.predict import Predictor
from agrnet.version import __version__

__all__ = [
    "AGRNet",
    "AGRNetConfig",
    "AGRNetOutput",
    "CELEBAMASK_HQ",
    "FASSEG",
    "HELEN",
    "LAPA",
    "LIP",
    "LabelSchema",
    "Predictor",
    "__version__",
    "get_schema",
]

"""AGRNet: adaptive graph representation learning and reasoning for face parsing (Te et al., IEEE TIP 2021)."""

__version__ = "0.1.0"

from agrnet.data.labels import CELEBAMASK_HQ, FASSEG, HELEN, LAPA, LIP, LabelSchema, get_schema  # noqa: E402
from agrnet.model import AGRNet, AGRNetOutput  # noqa: E402
from agrnet.predict import Predictor  # noqa: E402

__all__ = [
    "AGRNet",
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

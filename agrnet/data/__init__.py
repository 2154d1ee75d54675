"""Face-parsing data: label schemas, edge ground truth, dataset readers, synthetic faces and transforms.

Readers are named after their dataset (``LaPa``, ``Helen``, ``CelebAMaskHQ``, ``Fasseg``), label schemas in capitals
(``LAPA``, ``HELEN``, ``CELEBAMASK_HQ``, ``FASSEG``); ``LIP`` here is the LIP reader and ``LIP_SCHEMA`` its schema
(``agrnet.data.labels.LIP``). This package does not import ``agrnet.model``.
"""

from agrnet.data.datasets import (
    DATASETS,
    LIP,
    CelebAMaskHQ,
    Fasseg,
    Helen,
    LaPa,
    build_dataset,
)
from agrnet.data.edges import label_edges
from agrnet.data.labels import CELEBAMASK_HQ, FASSEG, HELEN, LAPA, SCHEMAS, LabelSchema, get_schema
from agrnet.data.labels import LIP as LIP_SCHEMA
from agrnet.data.synthetic import SyntheticFaces
from agrnet.data.transforms import EvalTransform, TrainTransform
from agrnet.files import default_cache_dir

__all__ = [
    "CELEBAMASK_HQ",
    "DATASETS",
    "FASSEG",
    "HELEN",
    "LAPA",
    "LIP",
    "LIP_SCHEMA",
    "SCHEMAS",
    "CelebAMaskHQ",
    "EvalTransform",
    "Fasseg",
    "Helen",
    "LaPa",
    "LabelSchema",
    "SyntheticFaces",
    "TrainTransform",
    "build_dataset",
    "default_cache_dir",
    "get_schema",
    "label_edges",
]

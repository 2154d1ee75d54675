"""Face-parsing data: label schemas, edge ground truth, dataset readers, synthetic faces and transforms.

``LIP`` and ``FASSEG`` here are the dataset readers; their label schemas are ``LIP_SCHEMA`` and ``FASSEG_SCHEMA``
(``agrnet.data.labels.LIP`` and ``.FASSEG``). This package does not import ``agrnet.model``.
"""

from agrnet.data.datasets import (
    DATASETS,
    FASSEG,
    LIP,
    CelebAMaskHQ,
    Helen,
    LaPa,
    build_dataset,
)
from agrnet.data.edges import label_edges
from agrnet.data.labels import CELEBAMASK_HQ, HELEN, LAPA, SCHEMAS, LabelSchema, get_schema
from agrnet.data.labels import FASSEG as FASSEG_SCHEMA
from agrnet.data.labels import LIP as LIP_SCHEMA
from agrnet.data.synthetic import SyntheticFaces
from agrnet.data.transforms import EvalTransform, TrainTransform
from agrnet.files import default_cache_dir

__all__ = [
    "CELEBAMASK_HQ",
    "DATASETS",
    "FASSEG",
    "FASSEG_SCHEMA",
    "HELEN",
    "LAPA",
    "LIP",
    "LIP_SCHEMA",
    "SCHEMAS",
    "CelebAMaskHQ",
    "EvalTransform",
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

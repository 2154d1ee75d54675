"""Label schemas of the face- and human-parsing datasets: class names, colours, left/right pairs, F1 groups.

Left and right follow the annotators' convention, which is the *subject's* left and right: the subject's left eye
appears on the image's right-hand side in an upright, non-mirrored photo. The CelebAMask-HQ fixture shows it
(``00000_l_eye.png`` marks the eye on the image right) and every schema here, as well as ``SyntheticFaces``, uses
the same convention. A horizontal flip therefore must swap each ``flip_pairs`` entry (see ``mirror_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

IGNORE_INDEX = 255


@dataclass(frozen=True, eq=False)
class LabelSchema:
    """The classes of one dataset: ``classes[i]`` is the name of id ``i``, ``palette[i]`` its RGB colour.

    ``flip_pairs`` lists the (left, right) ids a horizontal flip exchanges; ``groups`` names merged classes used
    for grouped F1 (e.g. Helen's "overall" score over brows, eyes, nose and mouth); ``ignore_index`` marks pixels
    that carry no label (padding, unlabelled areas).
    """

    name: str
    classes: tuple[str, ...]
    palette: np.ndarray
    flip_pairs: tuple[tuple[int, int], ...] = ()
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        palette = np.array(self.palette, dtype=np.uint8).reshape(-1, 3)
        palette.flags.writeable = False
        object.__setattr__(self, "palette", palette)
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))
        object.__setattr__(self, "groups", {k: tuple(int(i) for i in v) for k, v in self.groups.items()})
        n = len(self.classes)
        if palette.shape[0] != n:
            raise ValueError(f"schema {self.name!r}: {palette.shape[0]} palette colours for {n} classes")
        ids = [i for pair in self.flip_pairs for i in pair] + [i for g in self.groups.values() for i in g]
        if any(not 0 <= i < n for i in ids):
            raise ValueError(f"schema {self.name!r}: flip pair or group id outside 0..{n - 1}")
        flipped = [i for pair in self.flip_pairs for i in pair]
        if len(set(flipped)) != len(flipped) or any(a == b for a, b in self.flip_pairs):
            raise ValueError(f"schema {self.name!r}: flip pairs must be disjoint pairs of distinct ids")
        if 0 <= self.ignore_index < n:
            raise ValueError(f"schema {self.name!r}: ignore_index {self.ignore_index} is a class id")

    @property
    def num_classes(self) -> int:
        """Nc, the number of classes including background."""
        return len(self.classes)

    def flip_permutation(self) -> torch.Tensor:
        """LongTensor of length Nc mapping each id to the id of its mirror image (identity off the pairs)."""
        permutation = torch.arange(self.num_classes)
        if self.flip_pairs:
            pairs = torch.tensor(self.flip_pairs)
            permutation[pairs[:, 0]] = pairs[:, 1]
            permutation[pairs[:, 1]] = pairs[:, 0]
        return permutation

    def mirror_ids(self, label: torch.Tensor) -> torch.Tensor:
        """Swap left and right ids in an integer label map of any shape; ``ignore_index`` stays as it is.

        This only relabels: call it after flipping the pixels horizontally.
        """
        lookup = torch.full((max(self.num_classes, self.ignore_index + 1),), self.ignore_index, dtype=label.dtype)
        lookup[: self.num_classes] = self.flip_permutation().to(label.dtype)
        return lookup.to(label.device)[label.long()]

    def colorize(self, label: torch.Tensor) -> torch.Tensor:
        """Colour an integer label map (... x H x W) with the palette: uint8 (... x 3 x H x W); ignore is white."""
        table = torch.full((max(self.num_classes, self.ignore_index + 1), 3), 255, dtype=torch.uint8)
        table[: self.num_classes] = torch.from_numpy(self.palette.copy())
        return table.to(label.device)[label.long()].movedim(-1, -3)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form, for checkpoints and JSON."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "palette": self.palette.tolist(),
            "flip_pairs": [list(pair) for pair in self.flip_pairs],
            "groups": {k: list(v) for k, v in self.groups.items()},
            "ignore_index": self.ignore_index,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSchema:
        """Inverse of ``to_dict``."""
        return cls(
            name=data["name"],
            classes=tuple(data["classes"]),
            palette=np.asarray(data["palette"], dtype=np.uint8),
            flip_pairs=tuple(tuple(pair) for pair in data.get("flip_pairs", ())),
            groups={k: tuple(v) for k, v in data.get("groups", {}).items()},
            ignore_index=int(data.get("ignore_index", IGNORE_INDEX)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSchema):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.name, self.classes, self.flip_pairs))


_FACE_CLASSES = (
    "background",
    "skin",
    "left eyebrow",
    "right eyebrow",
    "left eye",
    "right eye",
    "nose",
    "upper lip",
    "inner mouth",
    "lower lip",
    "hair",
)
_FACE_FLIP_PAIRS = ((2, 3), (4, 5))
_FACE_GROUPS = {
    "brows": (2, 3),
    "eyes": (4, 5),
    "nose": (6,),
    "mouth": (7, 8, 9),
    "overall": (2, 3, 4, 5, 6, 7, 8, 9),
}
# LaPa's colormap.txt (github.com/jd-opensource/lapa-dataset), copied into ../shared/data/lapa-meta.
_LAPA_PALETTE = (
    (0, 0, 0),
    (0, 153, 255),
    (102, 255, 153),
    (0, 204, 153),
    (255, 255, 102),
    (255, 255, 204),
    (255, 153, 0),
    (255, 102, 255),
    (102, 0, 51),
    (255, 204, 255),
    (255, 0, 102),
)

LAPA = LabelSchema(
    name="lapa",
    classes=_FACE_CLASSES,
    palette=np.array(_LAPA_PALETTE),
    flip_pairs=_FACE_FLIP_PAIRS,
    groups=_FACE_GROUPS,
)
"""LaPa, 11 classes (Liu et al., AAAI 2020).

Source: the release's ``labelmap.txt`` and ``colormap.txt`` (github.com/jd-opensource/lapa-dataset, copied in
``../shared/data/lapa-meta``). Flip pairs: eyebrows (2, 3), eyes (4, 5).
"""

HELEN = LabelSchema(
    name="helen",
    classes=_FACE_CLASSES,
    palette=np.array(_LAPA_PALETTE),
    flip_pairs=_FACE_FLIP_PAIRS,
    groups=_FACE_GROUPS,
)
"""Helen, 11 classes (Le et al., ECCV 2012; parsing labels by Smith et al., CVPR 2013).

Source: the ``SmithCVPR2013_dataset_resized`` release, whose per-class maps ``<name>_lbl00.png`` ...
``_lbl10.png`` are, in order: background, face skin, left brow, right brow, left eye, right eye, nose, upper
lip, inner mouth, lower lip, hair (the order of AGRNet Sec. V-A). Helen has no official colours; LaPa's are used.
Groups are the paper's merged components for the "overall" F1: brows, eyes, nose, mouth (upper lip + inner mouth
+ lower lip), and overall (all of them).
"""

CELEBAMASK_HQ_PARTS = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
CELEBAMASK_HQ = LabelSchema(
    name="celebamask-hq",
    classes=("background", *CELEBAMASK_HQ_PARTS),
    palette=np.array(
        (
            (0, 0, 0),
            (204, 0, 0),
            (76, 153, 0),
            (204, 204, 0),
            (51, 51, 255),
            (204, 0, 204),
            (0, 255, 255),
            (255, 204, 204),
            (102, 51, 0),
            (255, 0, 0),
            (102, 204, 0),
            (255, 255, 0),
            (0, 0, 153),
            (0, 0, 204),
            (255, 51, 153),
            (0, 204, 204),
            (0, 51, 0),
            (255, 153, 51),
            (0, 204, 0),
        )
    ),
    flip_pairs=((4, 5), (6, 7), (8, 9)),
    groups={"brows": (6, 7), "eyes": (4, 5), "ears": (8, 9), "mouth": (10, 11, 12)},
)
"""CelebAMask-HQ, 19 classes (Lee et al., CVPR 2020).

Source: ``label_list`` and ``color_list`` of ``Data_preprocessing/g_mask.py`` / ``g_color.py`` in
github.com/switchablenorms/CelebAMask-HQ; id = 1 + position in that list, 0 = background. Flip pairs: eyes (4, 5),
brows (6, 7), ears (8, 9).
"""

LIP = LabelSchema(
    name="lip",
    classes=(
        "background",
        "hat",
        "hair",
        "glove",
        "sunglasses",
        "upper-clothes",
        "dress",
        "coat",
        "socks",
        "pants",
        "jumpsuits",
        "scarf",
        "skirt",
        "face",
        "left-arm",
        "right-arm",
        "left-leg",
        "right-leg",
        "left-shoe",
        "right-shoe",
    ),
    palette=np.array(
        (
            (0, 0, 0),
            (128, 0, 0),
            (0, 128, 0),
            (128, 128, 0),
            (0, 0, 128),
            (128, 0, 128),
            (0, 128, 128),
            (128, 128, 128),
            (64, 0, 0),
            (192, 0, 0),
            (64, 128, 0),
            (192, 128, 0),
            (64, 0, 128),
            (192, 0, 128),
            (64, 128, 128),
            (192, 128, 128),
            (0, 64, 0),
            (128, 64, 0),
            (0, 192, 0),
            (128, 192, 0),
        )
    ),
    flip_pairs=((14, 15), (16, 17), (18, 19)),
    groups={"arms": (14, 15), "legs": (16, 17), "shoes": (18, 19)},
)
"""LIP, 20 classes (Gong et al., CVPR 2017).

Source: the class list of the LIP release (sysu-hcp.net/lip, ``README`` of ``TrainVal_parsing_annotations``);
the palette is the PASCAL VOC colour map the LIP tools use. Flip pairs: arms (14, 15), legs (16, 17),
shoes (18, 19).
"""

FASSEG = LabelSchema(
    name="fasseg",
    classes=("background", "skin", "hair", "eyes", "nose", "mouth"),
    palette=np.array(((255, 0, 0), (255, 255, 0), (127, 0, 0), (0, 0, 255), (0, 255, 255), (0, 255, 0))),
)
"""FASSEG, 6 classes (Khan, Mauro, Leonardi, ICIP 2015; Khan et al., ICME 2017).

Source: the colour code of the release (github.com/massimomauro/FASSEG-repository): background red, skin
(including neck) yellow, hair (including eyebrows) dark red, eyes blue, nose cyan, mouth green. Label files are
RGB images in this palette. No left/right classes, so no flip pairs.
"""

SCHEMAS: dict[str, LabelSchema] = {s.name: s for s in (LAPA, HELEN, CELEBAMASK_HQ, LIP, FASSEG)}


@dataclass(frozen=True)
class LabelMapping:
    """Labels of ``source`` read as ``target``'s classes: ``classes`` maps a source class name to a target class
    name, or to None for pixels that are left out of the score (``ignore_index``); source classes it does not name
    become ``target``'s class 0 (background)."""

    source: LabelSchema
    target: LabelSchema
    classes: dict[str, str | None]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.classes) - set(self.source.classes))
        unknown += sorted({t for t in self.classes.values() if t is not None} - set(self.target.classes))
        if unknown:
            raise ValueError(f"{self.source.name} -> {self.target.name}: unknown classes {unknown}")

    def table(self) -> torch.Tensor:
        """The lookup table (int64, 256 entries: any uint8 id) from a source id to a target id."""
        table = torch.zeros(256, dtype=torch.long)
        table[self.source.num_classes :] = self.target.ignore_index
        for name, target in self.classes.items():
            index = self.source.classes.index(name)
            table[index] = self.target.ignore_index if target is None else self.target.classes.index(target)
        table[self.source.ignore_index] = self.target.ignore_index
        return table

    def __call__(self, label: torch.Tensor) -> torch.Tensor:
        """``label`` (source ids, any shape) as target ids."""
        return self.table().to(label.device)[label.long()]


CELEBAMASK_HQ_AS_FASSEG = LabelMapping(
    CELEBAMASK_HQ,
    FASSEG,
    {
        "skin": "skin", "l_ear": "skin", "r_ear": "skin", "neck": "skin",
        "hair": "hair", "l_brow": "hair", "r_brow": "hair",
        "l_eye": "eyes", "r_eye": "eyes", "nose": "nose",
        "mouth": "mouth", "u_lip": "mouth", "l_lip": "mouth",
        "eye_g": None,
    },
)  # fmt: skip
"""CelebAMask-HQ's 19 classes as FASSEG's 6, the components both label (as the paper's Table IV scores "common
components" across datasets): skin, ears and neck are skin (FASSEG's skin holds the neck); hair and both brows are
hair (FASSEG's hair holds the eyebrows); both eyes are eyes; nose; mouth and both lips are mouth; cloth, hat,
earring, necklace and background are background; eyeglasses are left out of the score, since FASSEG has no such
class and what lies under them is unknown."""


LABEL_MAPPINGS: dict[tuple[str, str], LabelMapping] = {("celebamask-hq", "fasseg"): CELEBAMASK_HQ_AS_FASSEG}
"""The mappings a dataset's labels can be scored through for a model of another schema: (dataset's schema,
model's schema) -> mapping."""


def label_mapping(source: LabelSchema, target: LabelSchema) -> LabelMapping | None:
    """The mapping of ``LABEL_MAPPINGS`` that reads ``source`` labels as ``target`` classes, or None."""
    mapping = LABEL_MAPPINGS.get((source.name, target.name))
    return mapping if mapping is not None and (mapping.source, mapping.target) == (source, target) else None


def get_schema(name: str) -> LabelSchema:
    """The schema called ``name`` (case-insensitive; "synthetic" gives LaPa, the synthetic faces' schema)."""
    key = name.lower().replace("_", "-")
    key = {"synthetic": "lapa", "celebamaskhq": "celebamask-hq", "celeba": "celebamask-hq"}.get(key, key)
    if key not in SCHEMAS:
        raise ValueError(f"unknown label schema {name!r}; choose one of {sorted(SCHEMAS)} or 'synthetic'")
    return SCHEMAS[key]

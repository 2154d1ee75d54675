"""Every number the paper publishes that the package uses: Te et al., IEEE TIP 30, 2021, Tables I, II and IV and
the training settings of Sec. V-B. Each is written here once; the code that compares with the paper reads it here.
"""

from __future__ import annotations

PAPER_INPUT_SIZE = 473
"""The side of the square input images of Sec. V-B, in pixels."""
PAPER_WEIGHTS = (1.0, 1.0, 1.0, 0.5, 0.1)
"""lambda1 ... lambda5 of Sec. V-B, the weights of the five terms of Eq. (11) (``agrnet.losses.TERMS``)."""

PAPER_TABLE_1A: dict[int, tuple[float, float, float]] = {
    1: (90.9, 85.1, 90.2),
    2: (91.1, 85.7, 90.8),
    3: (91.4, 86.0, 91.3),
    4: (91.9, 86.3, 91.7),
    5: (91.6, 85.6, 92.1),
    6: (92.3, 87.0, 92.7),
}
"""Table I(a), the modules, on LaPa: model number -> (mean F1, mIoU, mean accuracy) in %. Models 1 to 6: ResNet
(with pyramid pooling, trained with cross-entropy alone), + spatial graph projection, + adaptive projection,
+ adaptive + graph reasoning, + adaptive + edge, + adaptive + edge + graph (the full AGRNet)."""
PAPER_TABLE_1B: dict[int, tuple[float, float, float]] = {
    1: (90.9, 85.1, 90.2),
    2: (91.4, 86.1, 92.5),
    3: (91.8, 86.3, 91.8),
    4: (92.3, 87.0, 92.7),
}
"""Table I(b), the losses, on LaPa: model number -> (mean F1, mIoU, mean accuracy) in %. Models 1 to 4:
cross-entropy, + discriminative loss, + boundary-attention loss, + both."""
PAPER_TABLE_1C: dict[int, tuple[float, float, float]] = {
    1: (91.6, 86.0, 92.0),
    2: (91.9, 86.3, 93.5),
    4: (92.3, 87.0, 92.7),
    8: (91.1, 86.2, 92.3),
}
"""Table I(c), vertices per class, on LaPa: K -> (mean F1, mIoU, mean accuracy) in %."""

#: Table I(d) of the paper (ResNet-101, 473 x 473, batch 1): GFLOPs and millions of parameters. The paper's
#: "ResNet" row is the whole baseline network; it does not say how it counts FLOPs.
PAPER_TABLE_1D: dict[str, tuple[float, float]] = {
    "baseline (ResNet)": (6.652, 14.10),
    "edge perceiving": (0.249, 0.03),
    "graph projection": (0.471, 0.02),
    "graph reasoning": (0.037, 0.01),
}

PAPER_MEAN_F1: dict[str, float] = {
    "paper-baseline": PAPER_TABLE_1A[1][0],
    "+adaptive projection": PAPER_TABLE_1A[3][0],
    "+edge": PAPER_TABLE_1A[5][0],
    "full": PAPER_TABLE_1A[6][0],
    "full, no discriminative loss": PAPER_TABLE_1B[3][0],
    "full, no boundary-attention loss": PAPER_TABLE_1B[2][0],
    **{f"top-{top_k}": row[0] for top_k, row in PAPER_TABLE_1C.items()},
}
"""Mean F1 (%) on LaPa of the paper's Table I (a, b, c) for the variants of the paired experiments that it has:
its baseline (row 1 of Table I(a)) is ResNet + pyramid pooling trained with cross-entropy alone, our
"paper-baseline"; our "baseline" adds L_BA, which the paper's rows add only with the edge module."""
PAPER_FULL_OVER_BASELINE = round(PAPER_MEAN_F1["full"] - PAPER_MEAN_F1["paper-baseline"], 1)
"""The paper's full AGRNet minus its baseline, Table I(a) on LaPa (92.3 - 90.9 mean F1), in points."""

# The AGRNet row of Table II (F1, %), each column mapped to the report entry it compares with: "f1/<class name>",
# "group_f1/<group name>" (classes merged, see agrnet.metrics) or "mean_f1". Columns keep the paper's order and names.
PAPER_TABLE_II: dict[str, tuple[tuple[str, str, float], ...]] = {
    "helen": (
        ("Skin", "f1/skin", 95.1),
        ("Nose", "f1/nose", 95.9),
        ("U-lip", "f1/upper lip", 83.2),
        ("I-mouth", "f1/inner mouth", 90.0),
        ("L-lip", "f1/lower lip", 90.9),
        ("Eyes", "group_f1/eyes", 90.1),
        ("Brows", "group_f1/brows", 85.0),
        ("Mouth", "group_f1/mouth", 96.2),
        ("Overall", "group_f1/overall", 93.2),
    ),
    "lapa": (
        ("Skin", "f1/skin", 97.7),
        ("Hair", "f1/hair", 96.5),
        ("L-Eye", "f1/left eye", 91.6),
        ("R-Eye", "f1/right eye", 91.1),
        ("U-lip", "f1/upper lip", 88.5),
        ("I-mouth", "f1/inner mouth", 90.7),
        ("L-lip", "f1/lower lip", 90.1),
        ("Nose", "f1/nose", 97.3),
        ("L-Brow", "f1/left eyebrow", 89.9),
        ("R-Brow", "f1/right eyebrow", 90.0),
        ("Mean", "mean_f1", 92.3),
    ),
    "celebamask-hq": (
        ("Face", "f1/skin", 96.5),
        ("Nose", "f1/nose", 93.9),
        ("Glasses", "f1/eye_g", 91.8),
        ("L-Eye", "f1/l_eye", 88.7),
        ("R-Eye", "f1/r_eye", 89.1),
        ("L-Brow", "f1/l_brow", 85.5),
        ("R-Brow", "f1/r_brow", 85.6),
        ("L-Ear", "f1/l_ear", 88.1),
        ("R-Ear", "f1/r_ear", 88.7),
        ("I-Mouth", "f1/mouth", 92.0),
        ("U-Lip", "f1/u_lip", 89.1),
        ("L-Lip", "f1/l_lip", 91.1),
        ("Hair", "f1/hair", 95.2),
        ("Hat", "f1/hat", 87.2),
        ("Earring", "f1/ear_r", 69.6),
        ("Necklace", "f1/neck_l", 32.8),
        ("Neck", "f1/neck", 89.9),
        ("Cloth", "f1/cloth", 84.9),
        ("Mean", "mean_f1", 85.5),
    ),
}

PAPER_TABLE_IV: dict[tuple[str, str], dict[str, float]] = {
    ("Helen-Train", "Helen-Test"): {"skin": 95.0, "nose": 96.0, "eyes": 89.9, "mouth": 96.2, "overall": 93.1},
    ("CelebAMask-HQ", "Helen-Test"): {"skin": 93.2, "nose": 94.7, "eyes": 89.1, "mouth": 92.4, "overall": 91.8},
    ("Helen-Primary", "Helen-Reference"): {"skin": 92.6, "nose": 92.0, "eyes": 81.2, "mouth": 95.6, "overall": 90.9},
    ("Helen-Reference", "Helen-Primary"): {"skin": 61.3, "nose": 34.8, "eyes": 69.4, "mouth": 33.2, "overall": 42.9},
}
"""Table IV, the domain gaps, in F1 (%): (trained on, tested on) -> the columns that FASSEG's classes can be set
beside (skin, nose, eyes, the merged mouth, and the overall score); the paper's lip, inner-mouth and brow columns
have no FASSEG counterpart."""

"""What the experiments are: the step protocol every training follows, and each experiment's variants, seeds and
results file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agrnet.data.transforms import APPEARANCE
from agrnet.losses import AUTHORS_WEIGHTS

DEFAULT_ROOT = Path("../shared/data/fasseg")
"""Where ``agrnet experiment`` looks for FASSEG by default."""
DEFAULT_RUNS_DIR = Path("runs/experiments")
"""Where the run folders of the trainings go by default (``run_folder``)."""

PROTOCOL: dict[str, Any] = {
    "backbone": "resnet18",
    "pretrained_backbone": None,
    "output_stride": 16,
    "train_split": "train+multipose-train",
    "size": 256,
    "channels": 64,
    "batch_size": 8,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "rotation": 15.0,
    "scale": (0.8, 1.2),
    "steps": 800,
    "val_every": 0,
    "num_val_images": 4,
    "checkpoint_every": 100,
    "log_every": 10,
    "workers": 0,
    "device": "cpu",
    "amp": "auto",
    "channels_last": "auto",
}
"""The step protocol every experiment trains with (on top of the "fasseg" preset): a from-scratch ResNet-18 (no
ImageNet weights offline) at output stride 16, 256 px, batch 8, AdamW with the poly schedule over ``steps``. A
training is defined by its steps, so its result does not depend on the machine's speed; ``--time-cap-minutes``
only bounds the cost (a run that hits the cap is recorded as such). Precision is "auto": fp32 unless a short
probe on this machine shows bf16 (native bf16 CPUs and GPUs only) or channels_last faster, recorded per run.
The training's own end-of-run validation is a smoke check on 4 ``val`` images; the scores come from ``evaluate``
on whole splits. CPU threads are torch's default (``OMP_NUM_THREADS`` sets them): they change the speed, not the
result."""


@dataclass(frozen=True)
class Evaluation:
    """Score on ``split``; ``by_yaw`` adds one score per head pose (FASSEG multipose samples carry ``yaw``);
    ``photos`` scores through the photo pipeline (``agrnet.faces.score_photos``: each face found, aligned, parsed
    with its context view and pasted back) instead of resizing each image whole; ``shrink`` N > 1 shows it each
    photo with N times less detail (``agrnet.data.transforms.LowResolution``), as a small photo's faces; ``hands``
    raises a hand over each photo's face (``agrnet.data.transforms.RaisedHand``: the same hand for an image every
    time, its pixels labelled background)."""

    split: str
    by_yaw: bool = False
    photos: bool = False
    shrink: int = 1
    hands: bool = False

    def __post_init__(self) -> None:
        if self.shrink < 1 or (self.shrink > 1 and not self.photos):
            raise ValueError(f"shrink: expected 1, or an integer > 1 with photos; got {self.shrink}")
        if self.hands and (not self.photos or self.shrink > 1):
            raise ValueError("hands: scored through the photo pipeline (photos) at full resolution only")

    @property
    def key(self) -> str:
        """The name of this evaluation's report in a run's ``metrics``: the split, "(photos)" added, or
        "(photos, 1/N resolution)" when shrunk, or "(photos, hands)" with hands."""
        if self.shrink > 1:
            return f"{self.split} (photos, 1/{self.shrink} resolution)"
        if self.hands:
            return f"{self.split} (photos, hands)"
        return f"{self.split} (photos)" if self.photos else self.split

    @property
    def flip_key(self) -> str:
        """The name of this evaluation's report with flip test-time augmentation: ``key``, "(flip)" added."""
        return f"{self.key} (flip)"


@dataclass(frozen=True)
class Variant:
    """One trained model per seed: ``settings`` on top of ``PROTOCOL``, scored on each of ``evaluations``."""

    settings: dict[str, Any] = field(default_factory=dict)
    evaluations: tuple[Evaluation, ...] = (Evaluation("test"), Evaluation("test-unseen"))


@dataclass(frozen=True)
class Experiment:
    """Variants trained for each seed on the step protocol; ``settings`` apply to every variant (on top of
    ``PROTOCOL``, under the variant's own). With a ``reference`` variant, every other variant's paired difference
    to it over the seeds is reported with a 95 % interval."""

    variants: dict[str, Variant]
    seeds: tuple[int, ...]
    out: str
    settings: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None


PAIRED_SEEDS = (0, 1, 2, 3, 4)
"""Seeds of the paired experiments (ablation, top-K): five, the least that gives a paired t interval some power."""

SHORT_PROTOCOL: dict[str, Any] = {"size": 192, "steps": 300}
"""The paired experiments' protocol: 300 steps at 192 px (0.56 times the FLOPs of 256 px), so that 5 seeds of every
variant fit a few hours of a 2-core CPU; the main result's 800 steps at 256 px would take a day."""

CONSTANT_LR_PROTOCOL: dict[str, Any] = {**SHORT_PROTOCOL, "steps": 150, "poly_power": 0.0}
"""The learning rate of the first version of the ablation, for the diagnosis of its unstable graph variants: that
version gave each training 3 minutes of a schedule planned over 100 000 steps, so it stopped at 124 to 172 steps
with the learning rate still at its peak, in bf16 with channels_last (the precision its probe chose on an AMX
Xeon). Here: 150 steps at a constant learning rate, otherwise the short protocol; "fasseg-constant-lr" in the
experiment's one precision (fp32 where bf16 does not pay), "fasseg-constant-lr-bf16" in that version's."""

PHOTO_EVALUATIONS = (Evaluation("val"), Evaluation("test"), Evaluation("test-unseen"))
"""Where the photo experiment scores: ``val`` (the split its choices are made on) and both test splits."""
ZOOM_EVALUATIONS = (Evaluation("val"), Evaluation("val", photos=True), Evaluation("test"), Evaluation("test-unseen"))
"""Where the zoom-out experiment scores: ``val`` resized whole and through the photo pipeline (its multipose faces
show the hair, neck and clothes that frontal02's tight crops cut off), and both test splits."""
PHOTO_APPEARANCE = Variant({"train_split": "fit", "augment": APPEARANCE}, ZOOM_EVALUATIONS)
"""The appearance recipe on ``fit``, scored as ``ZOOM_EVALUATIONS``: the reference that ``fasseg-photo-zoom`` and
``fasseg-photo-leaves`` share (their runs are one training, recorded once and reused)."""
PHOTO_LEAVES = Variant({"train_split": "fit", "augment": (*APPEARANCE, "leaves")}, ZOOM_EVALUATIONS)
"""The appearance recipe with dead-leaves backgrounds, the recipe of the shipped photo model: the variant that
``fasseg-photo-leaves`` adds and the reference of ``fasseg-photo-pretrained``."""
ZOOM_OUT = (0.55, 1.2)
"""The scale range of the zoom-out augmentation: down to a face 0.55 times its size, smaller than the photo
pipeline's context view shows it (1 / ``agrnet.framing.CONTEXT`` = 0.625)."""

PAPER_BASELINE = Variant({"use_graph": False, "use_edge": False, "use_boundary": False})
"""The paper's baseline, Table I(a) row 1: ResNet and pyramid pooling trained with cross-entropy alone."""
BASELINE = Variant({"use_graph": False, "use_edge": False})
"""Our baseline: the paper's, trained with L_BA too (as every other variant of the ablation)."""
PRETRAINED_BACKBONE = "weights:synthetic-resnet18"
"""The stand-in for ImageNet of ``fasseg-pretrained``: the ResNet-18 backbone of the shipped ``synthetic-resnet18``
(3000 steps on 4000 procedural synthetic faces at 128 px; ``agrnet weights retrain synthetic-resnet18 --dry-run``
prints the command), shared by both variants so that they start from the same weights."""
PHOTO_PRETRAINED = Variant({**PHOTO_LEAVES.settings, "pretrained_backbone": PRETRAINED_BACKBONE}, ZOOM_EVALUATIONS)
"""``PHOTO_LEAVES`` started from the backbone of ``synthetic-resnet18``: ResNet features first trained on 4000
procedural synthetic faces, then on the 172 of FASSEG's ``fit``."""

PHOTO_CLOTHES = Variant(
    {**PHOTO_PRETRAINED.settings, "augment": (*PHOTO_LEAVES.settings["augment"], "clothes")}, ZOOM_EVALUATIONS
)
"""``PHOTO_PRETRAINED`` with shoulders in clothes drawn below the face (``agrnet.data.transforms.clothes``): the
reference of ``fasseg-photo-long`` and ``fasseg-photo-low-resolution``."""
LONG_STEPS = 1600
"""The steps of ``fasseg-photo-long``: twice the protocol's 800, the learning rate's poly schedule stretched over
them."""
LOW_RESOLUTION_EVALUATIONS = (*ZOOM_EVALUATIONS, Evaluation("val", photos=True, shrink=4))
"""``ZOOM_EVALUATIONS`` and ``val`` through the photo pipeline at a quarter of its resolution: FASSEG's 512 px
photos with faces about as detailed as a 128 px photo's, enlarged."""
PHOTO_LOW_RESOLUTION = Variant(
    {**PHOTO_CLOTHES.settings, "augment": (*PHOTO_CLOTHES.settings["augment"], "low-resolution")},
    LOW_RESOLUTION_EVALUATIONS,
)
"""``PHOTO_CLOTHES`` with faces seen at up to a third of their detail (``agrnet.data.transforms.low_resolution``)."""
PHOTO_LONG = Variant({**PHOTO_CLOTHES.settings, "steps": LONG_STEPS}, ZOOM_EVALUATIONS)
"""``PHOTO_CLOTHES`` trained twice as long: the recipe of the shipped photo model ``fasseg-photo-resnet18``."""
LARGE_SIZE = 320
"""The input size of ``fasseg-photo-long-320``: 1.25 times the protocol's 256 px in each direction (1.56 times the
pixels), so that the eyes and the mouth of a face in the model's frame span more pixels."""
PHOTO_LONG_LARGE = Variant({**PHOTO_LONG.settings, "size": LARGE_SIZE}, ZOOM_EVALUATIONS)
"""``PHOTO_LONG`` trained, and parsing, at ``LARGE_SIZE`` px."""
LARGE_RECIPE = f"appearance, leaves, pretrained, clothes, {LONG_STEPS} steps, {LARGE_SIZE} px"
"""The name of ``PHOTO_LONG_LARGE``'s variant, the recipe of the default photo model."""
HANDS_EVALUATIONS = (*ZOOM_EVALUATIONS, Evaluation("val", photos=True, hands=True))
"""``ZOOM_EVALUATIONS`` and ``val`` through the photo pipeline with a hand raised over each face."""
PHOTO_LONG_LARGE_HANDS = Variant(
    {**PHOTO_LONG_LARGE.settings, "augment": (*PHOTO_LONG_LARGE.settings["augment"], "hands")}, HANDS_EVALUATIONS
)
"""``PHOTO_LONG_LARGE`` (the recipe of the default photo model) with hands raised over the faces it trains on
(``agrnet.data.transforms.raise_hand``)."""
PHOTO_LONG_LOW_RESOLUTION = Variant(
    {**PHOTO_LOW_RESOLUTION.settings, "steps": LONG_STEPS}, LOW_RESOLUTION_EVALUATIONS
)
"""``PHOTO_LOW_RESOLUTION`` trained as long as ``PHOTO_LONG``: the recipe that both kept choices leave."""

ABLATION: dict[str, Variant] = {
    "paper-baseline": PAPER_BASELINE,
    "baseline": BASELINE,
    "+adaptive projection": Variant({"use_edge": False, "use_reasoning": False}),
    "+edge": Variant({"use_reasoning": False}),
    "full": Variant(),
    "full, no discriminative loss": Variant({"use_discriminative": False}),
    "full, no boundary-attention loss": Variant({"use_boundary": False}),
}
"""The variants of the ablation, Table I(a) and (b): parts switched on one at a time, then each loss switched off."""

EXPERIMENTS: dict[str, Experiment] = {
    "fasseg-main": Experiment({"full": Variant()}, (0, 1, 2), "book/results/fasseg_main.json"),
    "fasseg-ablation": Experiment(
        ABLATION, PAIRED_SEEDS, "book/results/fasseg_ablation.json", SHORT_PROTOCOL, reference="baseline"
    ),
    "fasseg-ablation-rerun": Experiment(
        ABLATION,
        PAIRED_SEEDS,
        "book/results/fasseg_ablation_rerun.json",
        {**SHORT_PROTOCOL, "amp": "none", "channels_last": False},
        reference="baseline",
    ),
    "fasseg-authors": Experiment(
        {
            "full": Variant(),
            "edge-gated reprojection": Variant({"edge_gate": True}),
            "detached edge map": Variant({"detach_edge": True}),
            "authors' loss weights": Variant({"loss_weights": AUTHORS_WEIGHTS}),
            "all three": Variant({"edge_gate": True, "detach_edge": True, "loss_weights": AUTHORS_WEIGHTS}),
        },
        PAIRED_SEEDS,
        "book/results/fasseg_authors.json",
        SHORT_PROTOCOL,
        reference="full",
    ),
    "fasseg-domain-gap": Experiment(
        {
            "frontal02 -> multipose": Variant(
                {"train_split": "train"},
                (Evaluation("multipose-train", by_yaw=True), Evaluation("test"), Evaluation("test-unseen")),
            ),
            "multipose -> frontal02": Variant(
                {"train_split": "multipose-train"}, (Evaluation("test"), Evaluation("test-unseen"))
            ),
        },
        (0,),
        "book/results/fasseg_domain_gap.json",
    ),
    "fasseg-constant-lr": Experiment(
        {"baseline": BASELINE, "full": Variant()},
        PAIRED_SEEDS,
        "book/results/fasseg_constant_lr.json",
        CONSTANT_LR_PROTOCOL,
        reference="baseline",
    ),
    "fasseg-constant-lr-bf16": Experiment(
        {"baseline": BASELINE, "full": Variant()},
        PAIRED_SEEDS,
        "book/results/fasseg_constant_lr_bf16.json",
        {**CONSTANT_LR_PROTOCOL, "amp": "bf16", "channels_last": True},
        reference="baseline",
    ),
    "fasseg-photo": Experiment(
        {
            "plain": Variant({"train_split": "fit"}, PHOTO_EVALUATIONS),
            "appearance": Variant({"train_split": "fit", "augment": APPEARANCE}, PHOTO_EVALUATIONS),
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo.json",
        reference="plain",
    ),
    "fasseg-photo-zoom": Experiment(
        {
            "appearance": PHOTO_APPEARANCE,
            "appearance, zoom-out": Variant(
                {"train_split": "fit", "augment": APPEARANCE, "scale": ZOOM_OUT}, ZOOM_EVALUATIONS
            ),
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo_zoom.json",
        reference="appearance",
    ),
    "fasseg-photo-leaves": Experiment(
        {
            "appearance": PHOTO_APPEARANCE,
            "appearance, leaves": PHOTO_LEAVES,
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo_leaves.json",
        reference="appearance",
    ),
    "fasseg-photo-pretrained": Experiment(
        {"appearance, leaves": PHOTO_LEAVES, "appearance, leaves, pretrained": PHOTO_PRETRAINED},
        PAIRED_SEEDS,
        "book/results/fasseg_photo_pretrained.json",
        reference="appearance, leaves",
    ),
    "fasseg-photo-clothes": Experiment(
        {"appearance, leaves, pretrained": PHOTO_PRETRAINED, "appearance, leaves, pretrained, clothes": PHOTO_CLOTHES},
        PAIRED_SEEDS,
        "book/results/fasseg_photo_clothes.json",
        reference="appearance, leaves, pretrained",
    ),
    "fasseg-photo-low-resolution": Experiment(
        {
            "appearance, leaves, pretrained, clothes": Variant(PHOTO_CLOTHES.settings, LOW_RESOLUTION_EVALUATIONS),
            "appearance, leaves, pretrained, clothes, low-resolution": PHOTO_LOW_RESOLUTION,
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo_low_resolution.json",
        reference="appearance, leaves, pretrained, clothes",
    ),
    "fasseg-photo-long": Experiment(
        {
            "appearance, leaves, pretrained, clothes": PHOTO_CLOTHES,
            f"appearance, leaves, pretrained, clothes, {LONG_STEPS} steps": PHOTO_LONG,
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo_long.json",
        reference="appearance, leaves, pretrained, clothes",
    ),
    "fasseg-photo-long-low-resolution": Experiment(
        {
            f"appearance, leaves, pretrained, clothes, {LONG_STEPS} steps": Variant(
                PHOTO_LONG.settings, LOW_RESOLUTION_EVALUATIONS
            ),
            f"appearance, leaves, pretrained, clothes, low-resolution, {LONG_STEPS} steps": PHOTO_LONG_LOW_RESOLUTION,
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo_long_low_resolution.json",
        reference=f"appearance, leaves, pretrained, clothes, {LONG_STEPS} steps",
    ),
    "fasseg-photo-long-320": Experiment(
        {
            f"appearance, leaves, pretrained, clothes, {LONG_STEPS} steps": PHOTO_LONG,
            f"appearance, leaves, pretrained, clothes, {LONG_STEPS} steps, {LARGE_SIZE} px": PHOTO_LONG_LARGE,
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo_long_320.json",
        reference=f"appearance, leaves, pretrained, clothes, {LONG_STEPS} steps",
    ),
    "fasseg-photo-hands": Experiment(
        {
            LARGE_RECIPE: Variant(PHOTO_LONG_LARGE.settings, HANDS_EVALUATIONS),
            f"{LARGE_RECIPE}, hands": PHOTO_LONG_LARGE_HANDS,
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo_hands.json",
        reference=LARGE_RECIPE,
    ),
    "fasseg-short-decay": Experiment(
        {"baseline": BASELINE, "full": Variant()},
        PAIRED_SEEDS,
        "book/results/fasseg_short_decay.json",
        {**SHORT_PROTOCOL, "steps": CONSTANT_LR_PROTOCOL["steps"]},
        reference="baseline",
    ),
    "fasseg-pretrained": Experiment(
        {"paper-baseline": PAPER_BASELINE, "full": Variant()},
        PAIRED_SEEDS,
        "book/results/fasseg_pretrained.json",
        {**SHORT_PROTOCOL, "pretrained_backbone": PRETRAINED_BACKBONE},
        reference="paper-baseline",
    ),
    "fasseg-long": Experiment(
        {"paper-baseline": PAPER_BASELINE, "full": Variant()}, PAIRED_SEEDS, "book/results/fasseg_long.json",
        reference="paper-baseline",
    ),
    "fasseg-topk": Experiment(
        {f"top-{k}": Variant({"top_k": k}) for k in (1, 2, 4, 8)},
        PAIRED_SEEDS,
        "book/results/fasseg_topk.json",
        SHORT_PROTOCOL,
        reference="top-4",
    ),
}

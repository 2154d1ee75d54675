"""Training and evaluation transforms on sample dicts (AGRNet Sec. V-B), built on ``torchvision.transforms.v2``.

Randomness comes from torch's global generator only (``torch.manual_seed`` makes a run reproducible; a
DataLoader seeds it differently in each worker from its base seed, so seeded loaders replay exactly).
"""

from __future__ import annotations

import math
import zlib

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from agrnet.data.base import Sample
from agrnet.data.edges import label_edges
from agrnet.data.labels import LabelSchema

GEOMETRIC_EXTRAS = ("landmarks",)
MIN_INPUT_SIZE = 32
"""The smallest input side the network takes: its ResNet brings an input of 32 pixels down to 8 x 8 cells at 1/4
(where the graph's vertices are chosen), 4 x 4 at 1/8 and 2 x 2 at 1/16 (the pyramid pooling's input); below that
the feature maps shrink to single cells and the parsing is noise."""


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(height), int(width)


def check_input_size(size: int | tuple[int, int] | list[int], name: str = "--size") -> tuple[int, int]:
    """``size`` (a side, or (H, W)) as (H, W) when the network can take it; else a ValueError naming ``name`` (the
    option or setting) that gives the smallest valid size, ``MIN_INPUT_SIZE``. The one check of ``agrnet train``,
    ``evaluate``, ``predict`` and ``export``."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    shown = str(size) if isinstance(size, int) else f"{height} x {width}"
    if height < 1 or width < 1:
        raise ValueError(f"{name}: expected a positive integer, got {shown}")
    if height < MIN_INPUT_SIZE or width < MIN_INPUT_SIZE:
        raise ValueError(
            f"{name}: {shown} is too small for the network; the smallest valid size is {MIN_INPUT_SIZE} "
            f"({MIN_INPUT_SIZE} x {MIN_INPUT_SIZE} pixels)"
        )
    return int(height), int(width)


AUGMENTATIONS = ("photometric", "background", "glasses", "leaves", "clothes", "low-resolution", "hands")
"""The appearance augmentations ``Appearance`` can apply, for faces from elsewhere than the training set."""
APPEARANCE = AUGMENTATIONS[:3]
"""The appearance recipe of experiment ``fasseg-photo`` (kept there); the shipped photo model
``fasseg-photo-resnet18`` adds "leaves" to it (experiment ``fasseg-photo-leaves``), starts from a pretrained
backbone (``fasseg-photo-pretrained``) and adds "clothes" (``fasseg-photo-clothes``); ``fasseg-photo-low-resolution``
tries "low-resolution" on top, ``fasseg-photo-hands`` "hands"."""
LOW_RESOLUTION = (1.0, 3.0)
"""The range of ``low_resolution``'s factor in the "low-resolution" augmentation: from the crop's own detail to a
third of it (a face of FASSEG's 256 px crop seen as a photo's 85 px face, upsampled)."""


def procedural_background(height: int, width: int) -> torch.Tensor:
    """A random texture (3 x H x W in [0, 1]): colour noise smoothed at a random scale (from fine grain to broad
    blotches) over a random colour gradient, with torch's global generator."""
    cell = int(torch.randint(2, 65, ()))
    noise = torch.rand(1, 3, max(2, height // cell), max(2, width // cell))
    noise = torch.nn.functional.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False)[0]
    ramp = torch.linspace(0, 1, height)[:, None] * torch.rand(()) + torch.linspace(0, 1, width) * torch.rand(())
    start, end = torch.rand(3, 1, 1), torch.rand(3, 1, 1)
    gradient = start + (end - start) * (ramp / ramp.max().clamp(min=1e-6))
    mix = torch.rand(())
    return (mix * noise + (1 - mix) * gradient).clamp(0, 1)


def dead_leaves(height: int, width: int, colours: torch.Tensor, count: int = 40) -> torch.Tensor:
    """A dead-leaves scene (3 x H x W in [0, 1]): ``count`` discs and boxes of random size (many small, few large),
    position and aspect, each hiding the ones dropped before it, seen out of focus (a Gaussian blur of random
    width). Half the leaves take the colour of a random row of ``colours`` (K x 3: the face's own pixels, so that
    skin and hair tones appear in the background too), the others a random colour between grey and saturated.
    Dead leaves have the occlusions and the scale statistics of natural images (Lee, Mumford and Huang, IJCV 2001);
    torch's global generator."""
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    centre_y, centre_x, size, aspect, boxy, own = torch.rand(6, count, 1, 1)
    radius = 0.03 + 0.4 * size**3
    dy, dx = (ys - centre_y) / radius, (xs - centre_x) / (radius * (0.5 + aspect))
    leaves = torch.where(boxy < 0.5, dy**2 + dx**2 < 1, (dy.abs() < 1) & (dx.abs() < 1))
    top = (leaves * torch.arange(1, count + 1)[:, None, None]).amax(0)  # the last leaf over a pixel; 0: none
    grey, saturation = torch.rand(2, count + 1, 1)
    random = grey + saturation * (torch.rand(count + 1, 3) - grey)  # from grey to fully saturated
    picked = colours[torch.randint(len(colours), (count + 1,))] if len(colours) else random
    palette = torch.where(torch.cat([torch.ones(1), own.flatten()])[:, None] < 0.5, picked, random)
    scene = palette[top].permute(2, 0, 1)
    sigma = float(torch.empty(()).uniform_(0.1, 4.0))
    return TF.gaussian_blur(scene, [2 * round(3 * sigma) + 1] * 2, [sigma, sigma]).clamp(0, 1)


def clothes(outside: torch.Tensor, colours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Shoulders in clothes below the face: where they cover the background ``outside`` (H x W bool), and their
    look (3 x H x W in [0, 1]); None when ``outside`` holds no face. The shoulders are an ellipse as wide as 1.6 to 3.2
    faces, its top between 70 % of the face's height and its lowest row, reaching below the picture; the cloth is
    dark (half the time), the colour of a random row of ``colours`` (K x 3: the face's own pixels, so that hair
    colours appear below the chin) or any colour, shaded by a smooth texture. Torch's global generator."""
    face_rows, face_columns = (~outside).any(1).nonzero().flatten(), (~outside).any(0).nonzero().flatten()
    if len(face_rows) < 2 or len(face_columns) < 2:
        return None
    height, width = outside.shape
    top, bottom = float(face_rows[0]), float(face_rows[-1])
    left, right = float(face_columns[0]), float(face_columns[-1])
    shoulder, half_width, depth = torch.rand(3).tolist()
    y0 = top + (0.7 + 0.3 * shoulder) * (bottom - top)
    rx, ry = (0.8 + 0.8 * half_width) * (right - left + 1), (height - y0 + 1) * (1 + depth)
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    xs = torch.arange(width, dtype=torch.float32)[None]
    inside = ((xs - (left + right) / 2) / rx) ** 2 + ((ys - y0 - ry) / ry) ** 2 < 1
    kind = float(torch.rand(()))
    if kind < 0.5:
        colour = torch.rand(3) * 0.3
    elif kind < 0.75 and len(colours):
        colour = colours[torch.randint(len(colours), ())]
    else:
        colour = torch.rand(3)
    shade = 0.6 + 0.4 * procedural_background(height, width).mean(0, keepdim=True)
    return inside.to(outside.device) & outside, (colour[:, None, None] * shade).clamp(0, 1).to(outside.device)


def outside_face(label: torch.Tensor, schema: LabelSchema) -> torch.Tensor:
    """Where ``label`` (H x W) shows no face: background (id 0) or ignored (an affine's uncovered border)."""
    return (label == 0) | (label == schema.ignore_index)


def _capsules(points: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """The distance of each of ``points`` (H x W x 2) to each segment ``starts`` -> ``ends`` (K x 2): K x H x W."""
    direction = ends - starts
    relative = points[None] - starts[:, None, None]
    along = (relative * direction[:, None, None]).sum(-1) / (direction**2).sum(-1).clamp(min=1e-6)[:, None, None]
    nearest = starts[:, None, None] + along.clamp(0, 1)[..., None] * direction[:, None, None]
    return (points[None] - nearest).norm(dim=-1)


def hand(outside: torch.Tensor, colours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A hand raised over the face: where it covers the picture (H x W bool) and its look (3 x H x W in [0, 1]);
    None when ``outside`` (H x W bool) holds no face. A palm (an ellipse 0.3 to 0.5 faces wide) with four fingers
    and a thumb (capsules of random length and spread) on a forearm that reaches the picture's edge, its palm
    centred on a random point of the face's lower two thirds, pointing up to 60 degrees either side of straight
    up; the median colour of ``colours`` (K x 3: the face's skin pixels, so the hand has a skin tone the model must
    not call skin), lit a little differently and shaded by a smooth texture. Torch's global generator."""
    face = (~outside).nonzero()
    if len(face) < 2 or not len(colours):
        return None
    height, width = outside.shape
    top, bottom = float(face[:, 0].min()), float(face[:, 0].max())
    face_width = float(face[:, 1].max() - face[:, 1].min() + 1)
    lower = face[face[:, 0] >= top + (bottom - top) / 3]
    centre_y, centre_x = lower[torch.randint(len(lower), ())].float().tolist()
    palm, angle, spread, length, thumb_side = torch.rand(5).tolist()
    palm_width = (0.3 + 0.2 * palm) * face_width
    angle = (angle - 0.5) * 2 * math.pi / 3  # radians from straight up
    ys = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=torch.float32)[None].expand(height, width)
    cos, sin = math.cos(angle), math.sin(angle)
    across = (xs - centre_x) * cos + (ys - centre_y) * sin  # the hand's own frame: across the palm, and up it
    up = (xs - centre_x) * sin - (ys - centre_y) * cos
    local = torch.stack([across, up], -1)
    covered = (across / (palm_width / 2)) ** 2 + (up / (0.55 * palm_width)) ** 2 < 1
    bases = torch.linspace(-0.36, 0.36, 4) * palm_width
    tilt = torch.linspace(-1, 1, 4) * 0.25 * spread
    finger_length = (0.6 + 0.4 * length) * palm_width * torch.tensor([0.85, 1.0, 0.95, 0.75])
    starts = torch.stack([bases, torch.full((4,), 0.35 * palm_width)], -1)
    ends = starts + finger_length[:, None] * torch.stack([tilt.sin(), tilt.cos()], -1)
    side = 1.0 if thumb_side < 0.5 else -1.0
    thumb_start = torch.tensor([[side * 0.4 * palm_width, -0.1 * palm_width]])
    thumb_end = thumb_start + 0.6 * palm_width * torch.tensor([[side * 0.8, 0.6]])
    reach = float(height + width)
    arm_start, arm_end = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, -reach]])
    radius = torch.cat([torch.full((4,), 0.1), torch.tensor([0.12, 0.42])]) * palm_width
    distance = _capsules(local, torch.cat([starts, thumb_start, arm_start]), torch.cat([ends, thumb_end, arm_end]))
    covered |= (distance < radius[:, None, None]).any(0)
    colour = colours.median(0).values * float(torch.empty(()).uniform_(0.85, 1.15))
    shade = 0.8 + 0.2 * procedural_background(height, width).mean(0, keepdim=True)
    return covered.to(outside.device), (colour[:, None, None] * shade).clamp(0, 1).to(outside.device)


def raise_hand(
    image: torch.Tensor, label: torch.Tensor, schema: LabelSchema
) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (3 x H x W) with a ``hand`` over the face that ``label`` (H x W, of ``schema``) outlines, in the
    face's skin tone (its "skin" pixels; all its face pixels for a schema without "skin"), and the label of what it
    shows: the hand's pixels are background (id 0). Both unchanged when the label holds no face."""
    outside = outside_face(label, schema)
    skin = label == schema.classes.index("skin") if "skin" in schema.classes else ~outside
    raised = hand(outside, image.flatten(1)[:, skin.flatten()].T.float())
    if raised is None:
        return image, label
    covered, look = raised
    return torch.where(covered, look.to(image), image), torch.where(covered, torch.zeros_like(label), label)


def low_resolution(image: torch.Tensor, factor: float) -> torch.Tensor:
    """``image`` (C x H x W) with ``factor`` times less detail, at its own size: shrunk by ``factor`` (antialiased)
    and enlarged back (bilinear), as a small photo's face is enlarged to a model's input."""
    if factor < 1:
        raise ValueError(f"factor: expected a value >= 1, got {factor}")
    height, width = image.shape[-2:]
    small = [max(1, round(height / factor)), max(1, round(width / factor))]
    shrunk = TF.resize(image, small, antialias=True)
    return TF.resize(shrunk, [height, width], antialias=False)


def glasses_frames(label: torch.Tensor, eye_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A pair of glasses drawn around the eyes of ``label`` (H x W): the frames' coverage (H x W in [0, 1]) and
    their colour (3 x 1 x 1), or None when the label shows fewer than 8 eye pixels. The eyes are split at the mean
    column of the eye pixels; each rim is an ellipse around one eye, about twice its size, and a bridge joins them."""
    eyes = torch.isin(label, torch.tensor(eye_ids, device=label.device))
    ys, xs = torch.nonzero(eyes, as_tuple=True)
    if len(xs) < 8:
        return None
    ys, xs = ys.float(), xs.float()
    height, width = label.shape
    grid_y = torch.arange(height, dtype=torch.float32, device=label.device)[:, None]
    grid_x = torch.arange(width, dtype=torch.float32, device=label.device)[None]
    middle = xs.mean()
    thickness = float(torch.empty(()).uniform_(0.006, 0.02)) * width + 0.5
    coverage = torch.zeros(height, width, device=label.device)
    centres = []
    for side in (xs < middle, xs >= middle):
        if side.sum() < 4:
            return None
        cx, cy = xs[side].mean(), ys[side].mean()
        rx = (xs[side].max() - xs[side].min()) * float(torch.empty(()).uniform_(0.8, 1.1)) + 4
        ry = (ys[side].max() - ys[side].min()) * float(torch.empty(()).uniform_(1.2, 1.8)) + 4
        radius = torch.sqrt(((grid_x - cx) / rx) ** 2 + ((grid_y - cy) / ry) ** 2)
        coverage = torch.maximum(coverage, ((radius - 1).abs() * torch.minimum(rx, ry) < thickness / 2).float())
        centres.append((cx, cy, rx))
    (left_x, left_y, left_r), (right_x, right_y, right_r) = centres
    bridge_y = (left_y + right_y) / 2
    bridge = (grid_x > left_x + left_r) & (grid_x < right_x - right_r) & ((grid_y - bridge_y).abs() < thickness / 2)
    coverage = torch.maximum(coverage, bridge.float())
    colour = torch.rand(3, 1, 1, device=label.device) * (0.35 if torch.rand(()) < 0.7 else 1.0)
    return coverage, colour


class Appearance:
    """Appearance augmentation for faces unlike the training set's: the image changes, the labels only where a hand
    covers the face.

    Each of ``kinds`` (``AUGMENTATIONS``) applies with probability ``p``:
    - "background": pixels labelled background (id 0) or ignored (the affine's uncovered border) are replaced by a
      ``procedural_background`` texture, so the face sits on a new background (FASSEG's label holds its outline);
    - "leaves": as "background", by a ``dead_leaves`` scene coloured in part by the face's own pixels (after
      "background", so it wins when both are drawn);
    - "clothes": ``clothes``, shoulders below the face over its background (after "leaves");
    - "glasses": ``glasses_frames`` are drawn over the face; the eyes stay labelled as eyes (FASSEG labels eyes
      behind frames as eyes; CelebAMask-HQ's score leaves eyeglasses out);
    - "hands": ``raise_hand``, a hand in the face's skin tone over the face (after "glasses"), its pixels labelled
      background (what a hand hides is no part of the face to a face parser, and CelebAMask-HQ labels hands so);
    - "low-resolution": ``low_resolution`` at a factor drawn uniformly from ``LOW_RESOLUTION`` (after the above,
      before "photometric": a camera's noise and compression come after its resolution);
    - "photometric": colour jitter (brightness, contrast, saturation, hue), gamma, greyscale, Gaussian blur,
      Gaussian noise and JPEG compression, each at random strength (``torchvision.transforms.v2``).
    Randomness comes from torch's global generator only.
    """

    def __init__(self, schema: LabelSchema, kinds: tuple[str, ...] = APPEARANCE, p: float = 0.5) -> None:
        unknown = sorted(set(kinds) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"augment: unknown {unknown}; choose from {list(AUGMENTATIONS)}")
        if not 0 <= p <= 1:
            raise ValueError(f"augment probability: expected a value in [0, 1], got {p}")
        self.schema, self.kinds, self.p = schema, tuple(kinds), p
        self.eye_ids = [i for i, name in enumerate(schema.classes) if "eye" in name and name != "eye_g"]
        self.photometric = v2.Compose(
            [
                v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.5, hue=0.08)], p=0.8),
                v2.RandomGrayscale(p=0.15),
                v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 2.0))], p=0.3),
                v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=0.3),
            ]
        )
        self.jpeg = v2.JPEG(quality=(30, 95))

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` (3 x H x W in [0, 1]) with the augmentations drawn for it, which ``label`` (H x W) places, and the
        label of what it shows (``label`` itself unless a hand covers part of the face)."""
        outside = outside_face(label, self.schema)
        if "background" in self.kinds and torch.rand(()) < self.p:
            image = torch.where(outside, procedural_background(*label.shape).to(image), image)
        if "leaves" in self.kinds and torch.rand(()) < self.p:
            face = image.flatten(1)[:, ~outside.flatten()].T.float()
            image = torch.where(outside, dead_leaves(*label.shape, face).to(image), image)
        if "clothes" in self.kinds and torch.rand(()) < self.p:
            face = image.flatten(1)[:, ~outside.flatten()].T.float()
            worn = clothes(outside, face)
            if worn is not None:
                image = torch.where(worn[0], worn[1].to(image), image)
        if "glasses" in self.kinds and self.eye_ids and torch.rand(()) < self.p:
            frames = glasses_frames(label, self.eye_ids)
            if frames is not None:
                coverage, colour = frames
                image = image * (1 - coverage) + colour.to(image) * coverage
        if "hands" in self.kinds and torch.rand(()) < self.p:
            image, label = raise_hand(image, label, self.schema)
        if "low-resolution" in self.kinds and torch.rand(()) < self.p:
            image = low_resolution(image, float(torch.empty(()).uniform_(*LOW_RESOLUTION)))
        if "photometric" in self.kinds and torch.rand(()) < self.p:
            image = self.photometric(image.clamp(0, 1))
            image = TF.adjust_gamma(image.clamp(0, 1), float(torch.empty(()).uniform_(0.6, 1.6)))
            if torch.rand(()) < 0.3:
                image = self.jpeg((image.clamp(0, 1) * 255).round().to(torch.uint8)).float() / 255
        return image.clamp(0, 1), label

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kinds={self.kinds}, p={self.p})"


class TrainTransform:
    """Random rotation in (-``rotation``, ``rotation``) degrees and scale in ``scale`` about the centre, a horizontal
    flip with probability 1/2 followed by the schema's left/right id swap, a fit to ``size``, and the
    ``appearance`` augmentation when given.

    The image is resized to ``size`` (bilinear, antialiased; label nearest), exactly as ``EvalTransform`` resizes
    it, so that training and evaluation see faces with the same aspect; then it is rotated and scaled (uncovered
    pixels: image 0, label ``ignore_index``). ``edge`` is recomputed from the transformed label. Other keys
    (``name``, ``yaw``, ...) pass through.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        schema: LabelSchema,
        rotation: float = 30.0,
        scale: tuple[float, float] = (0.75, 1.25),
        flip: bool = True,
        appearance: Appearance | None = None,
    ) -> None:
        self.size = _size_pair(size)
        self.schema = schema
        self.flip = flip
        self.appearance = appearance
        fill = {tv_tensors.Image: 0.0, tv_tensors.Mask: schema.ignore_index}
        self.geometry = v2.Compose(
            [
                v2.Resize(self.size, antialias=True),
                v2.RandomAffine(degrees=rotation, scale=scale, interpolation=v2.InterpolationMode.BILINEAR, fill=fill),
            ]
        )

    def __call__(self, sample: Sample) -> Sample:
        present = [key for key in GEOMETRIC_EXTRAS if key in sample]
        if present:
            raise ValueError(f"TrainTransform cannot move {present}; load the dataset without them")
        image, label = self.geometry(tv_tensors.Image(sample["image"]), tv_tensors.Mask(sample["label"]))
        if self.flip and torch.rand(()) < 0.5:
            image = TF.horizontal_flip(image)
            label = self.schema.mirror_ids(TF.horizontal_flip(label))
        image = image.as_subclass(torch.Tensor).clamp_(0.0, 1.0)
        label = label.as_subclass(torch.Tensor)
        if self.appearance is not None:
            image, label = self.appearance(image, label)
        edge = label_edges(label, self.schema.ignore_index)
        return {**sample, "image": image, "label": label, "edge": edge}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, schema={self.schema.name!r}, flip={self.flip}, {self.geometry}, "
            f"appearance={self.appearance})"
        )


class EvalTransform:
    """Resize the image to ``size`` (bilinear, antialiased) and keep the label and edge at full resolution.

    Adds ``original_size`` (H, W) so that a prediction at ``size`` can be resized back and scored against the
    untouched label.
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _size_pair(size)

    def __call__(self, sample: Sample) -> Sample:
        image = sample["image"]
        resized = TF.resize(tv_tensors.Image(image), list(self.size), antialias=True).as_subclass(torch.Tensor)
        return {**sample, "image": resized.clamp_(0.0, 1.0), "original_size": tuple(image.shape[-2:])}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class LowResolution:
    """A sample's image with ``factor`` times less detail, at its own size (``low_resolution``): a whole photo
    seen as a smaller one, enlarged back, for scoring through the photo pipeline."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, sample: Sample) -> Sample:
        return {**sample, "image": low_resolution(sample["image"], self.factor).clamp_(0.0, 1.0)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(factor={self.factor:g})"


class RaisedHand:
    """A sample's photo with a hand over its face (``raise_hand``), the hand's pixels labelled background: for
    scoring occluded faces through the photo pipeline. Each image gets the same hand every time, drawn from a
    generator seeded by its name (torch's global generator is left as it was)."""

    def __init__(self, schema: LabelSchema) -> None:
        self.schema = schema

    def __call__(self, sample: Sample) -> Sample:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(str(sample["name"]).encode()))
            image, label = raise_hand(sample["image"], sample["label"], self.schema)
        return {**sample, "image": image, "label": label}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema.name!r})"

"""Procedural synthetic faces in the LaPa schema: the default data of every command, no download needed.

Each face is drawn with array operations on a coordinate grid (no per-pixel Python loops). The label is exact:
every pixel takes the class of the last shape drawn over its centre. The image is then made photo-like, so that
boundaries are as ambiguous as in real photographs: skin-coloured nose and neck, shading, lighting, texture noise,
hair strands, cluttered backgrounds, occasional occluders (labelled background, as LaPa labels hands and objects
in front of the face) and a final blur.

Left and right follow the annotators' convention (see ``agrnet.data.labels``): "left eye" (id 4) and "left
eyebrow" (id 2) are the subject's left, drawn on the image's right-hand side; a yaw turns the face without
swapping sides.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from agrnet.data.base import ParsingDataset, Sample, Transform
from agrnet.data.labels import LAPA

BACKGROUND, SKIN, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, NOSE, UPPER_LIP, INNER_MOUTH, LOWER_LIP, HAIR = range(11)
SPLITS = ("train", "val", "test")


def _rgb(*values: float) -> np.ndarray:
    """An RGB colour as a float32 3 x 1 x 1 array, ready to broadcast over a 3 x H x W image."""
    return np.array(values, dtype=np.float32).reshape(3, 1, 1)


_SKIN_TONES = (
    _rgb(0.96, 0.80, 0.69),
    _rgb(0.92, 0.72, 0.58),
    _rgb(0.84, 0.62, 0.47),
    _rgb(0.70, 0.49, 0.35),
    _rgb(0.52, 0.35, 0.24),
    _rgb(0.36, 0.24, 0.17),
    _rgb(0.98, 0.86, 0.78),
)
_HAIR_COLOURS = (
    _rgb(0.08, 0.06, 0.05),
    _rgb(0.20, 0.13, 0.08),
    _rgb(0.36, 0.23, 0.13),
    _rgb(0.62, 0.45, 0.25),
    _rgb(0.85, 0.72, 0.45),
    _rgb(0.55, 0.22, 0.10),
    _rgb(0.65, 0.65, 0.65),
    _rgb(0.03, 0.03, 0.04),
)
_IRIS_COLOURS = (_rgb(0.25, 0.15, 0.07), _rgb(0.15, 0.3, 0.5), _rgb(0.2, 0.35, 0.2), _rgb(0.08, 0.06, 0.05))
_SCLERA, _TEETH, _MOUTH_INSIDE = _rgb(0.9, 0.88, 0.86), _rgb(0.85, 0.84, 0.8), _rgb(0.3, 0.08, 0.1)
_LIP_TINT = _rgb(1.0, 0.7, 0.72)


@cache
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates x (right) and y (down), the shorter side spanning [-0.5, 0.5]."""
    scale = min(height, width)
    y = (np.arange(height, dtype=np.float32) + 0.5 - height / 2) / scale
    x = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / scale
    grid_x, grid_y = np.meshgrid(x, y)
    grid_x.flags.writeable = False
    grid_y.flags.writeable = False
    return grid_x, grid_y


@cache
def _smooth_basis(length: int, cells: int) -> np.ndarray:
    """A length x cells matrix of normalised Gaussian weights that spreads ``cells`` knots smoothly over a side."""
    position = (np.arange(length, dtype=np.float32) + 0.5) / length * (cells - 1)
    weights = np.exp(-0.5 * ((position[:, None] - np.arange(cells, dtype=np.float32)) / 0.6) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    weights.flags.writeable = False
    return weights


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise (H x W, about unit scale): a random ``cells`` x ``cells`` grid, smoothly spread."""
    coarse = rng.standard_normal((cells, cells), dtype=np.float32)
    return _smooth_basis(shape[0], cells) @ coarse @ _smooth_basis(shape[1], cells).T * 1.6


class _Canvas:
    """A 3 x H x W image and its H x W label map, painted shape by shape (the last shape over a pixel wins)."""

    def __init__(self, image: np.ndarray, label: np.ndarray | None = None) -> None:
        self.image = image
        self.label = np.zeros(image.shape[1:], dtype=np.uint8) if label is None else label

    def paint(self, mask: np.ndarray, colour: np.ndarray, class_id: int) -> None:
        """Draw ``colour`` (3 x 1 x 1, or a 3 x H x W field) over ``mask`` and give those pixels ``class_id``."""
        np.copyto(self.image, colour, where=mask)
        np.copyto(self.label, np.uint8(class_id), where=mask)

    def crop(self, window: tuple[slice, slice]) -> _Canvas:
        """A canvas on a window of this one: painting it paints this one."""
        return _Canvas(self.image[(slice(None), *window)], self.label[window])


def _window(
    shape: tuple[int, int],
    pose: tuple[float, float, float, float],
    box: tuple[float, float, float, float],
) -> tuple[slice, slice]:
    """Rows and columns covering the face-coordinate box (u0, u1, v0, v1) under ``pose`` = (angle, scale, x, y)."""
    height, width = shape
    angle, scale, shift_x, shift_y = pose
    u = np.array([box[0], box[1], box[0], box[1]])
    v = np.array([box[2], box[2], box[3], box[3]])
    x = shift_x + scale * (math.cos(angle) * u - math.sin(angle) * v)
    y = shift_y + scale * (math.sin(angle) * u + math.cos(angle) * v)
    pixels = min(height, width)
    cols = x * pixels + width / 2 - 0.5
    rows = y * pixels + height / 2 - 0.5
    return (
        slice(max(int(rows.min()) - 1, 0), min(int(rows.max()) + 2, height)),
        slice(max(int(cols.min()) - 1, 0), min(int(cols.max()) + 2, width)),
    )


def _background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A cluttered background, 3 x H x W: a colour gradient under random ellipses and rectangles."""
    base = _rgb(*rng.uniform(0.05, 0.95, 3))
    tilt_x, tilt_y = _rgb(*rng.uniform(-0.6, 0.6, 3)), _rgb(*rng.uniform(-0.6, 0.6, 3))
    image = np.clip(base + x * tilt_x + y * tilt_y, 0.0, 1.0)
    for _ in range(int(rng.integers(2, 8))):
        cx, cy = rng.uniform(-0.6, 0.6, 2).tolist()
        rx, ry = rng.uniform(0.04, 0.35, 2).tolist()
        dx, dy = np.abs(x - cx) / rx, np.abs(y - cy) / ry
        inside = np.maximum(dx, dy) < 1 if rng.random() < 0.5 else dx * dx + dy * dy < 1
        np.copyto(image, _rgb(*rng.uniform(0.0, 1.0, 3)), where=inside)
    return image


_FEATURE_BOX = (-0.3, 0.3, -0.23, 0.36)
"""The box of face coordinates (u0, u1, v0, v1) that holds the brows, eyes, nose and mouth."""


@dataclass
class _Head:
    """What the drawing steps of ``render_face`` share: the face coordinates ``u``, ``v`` of every pixel, the yaw,
    the colours and textures of skin and hair, the face's outline and shading, and the hair style (0 short, 1 long,
    2 voluminous, 3 bald)."""

    u: np.ndarray
    v: np.ndarray
    yaw: float
    skin: np.ndarray
    hair_colour: np.ndarray
    skin_texture: np.ndarray
    hair_field: np.ndarray
    half_width: float
    half_height: float
    width_at: np.ndarray
    face: np.ndarray
    shading: np.ndarray
    style: int

    def crop(self, window: tuple[slice, slice]) -> _Head:
        """This head on a window of the image (``_Canvas.crop``): every per-pixel field cut to it."""
        return dataclasses.replace(
            self, u=self.u[window], v=self.v[window], skin_texture=self.skin_texture[window],
            hair_field=self.hair_field[(slice(None), *window)], width_at=self.width_at[window],
            face=self.face[window], shading=self.shading[window],
        )  # fmt: skip


def render_face(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic face: image float32 3 x H x W (before blur and noise) and label uint8 H x W (LaPa ids).

    Face coordinates (u right, v down, unit = the shorter image side) are the pixel grid after undoing a random
    rotation, scale and translation; a yaw shifts the features towards the turned side and narrows the far eye
    and brow. The subject's left features (ids 2, 4) lie at u > 0, the image's right-hand side.
    """
    grid_x, grid_y = _grid(height, width)
    pose, yaw, u, v = _pose(rng, grid_x, grid_y)
    canvas = _Canvas(_background(rng, grid_x, grid_y))
    head = _head(rng, (height, width), u, v, yaw)
    _paint_outline(rng, canvas, head)
    # The inner features live in a window around the eyes, nose and mouth: compute them there only.
    window = _window((height, width), pose, _FEATURE_BOX)
    features, in_window = canvas.crop(window), head.crop(window)
    centre_u = yaw * 0.12
    eye_v = _paint_eyes(rng, features, in_window, centre_u)
    nose_bottom = _paint_nose(rng, features, in_window, centre_u, eye_v)
    _paint_mouth(rng, features, in_window, centre_u, nose_bottom)
    _paint_hairline(rng, canvas, head)
    _paint_occluder(rng, canvas, head, grid_x, grid_y)
    light_angle = rng.uniform(0, 2 * math.pi)
    light = 1.0 + rng.uniform(0.1, 0.45) * (math.cos(light_angle) * grid_x + math.sin(light_angle) * grid_y)
    image = canvas.image * (light * rng.uniform(0.75, 1.2)) + _rgb(*rng.uniform(-0.05, 0.05, 3))
    return image, canvas.label


def _pose(
    rng: np.random.Generator, grid_x: np.ndarray, grid_y: np.ndarray
) -> tuple[tuple[float, float, float, float], float, np.ndarray, np.ndarray]:
    """A random pose (angle, scale, x, y), a random yaw, and the face coordinates u, v of every pixel."""
    angle, scale, yaw = rng.uniform(-0.35, 0.35), rng.uniform(0.78, 1.12), rng.uniform(-0.3, 0.3)
    shift_x, shift_y = rng.uniform(-0.07, 0.07, 2).tolist()
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = grid_x - shift_x, grid_y - shift_y
    u = (cos * dx + sin * dy) / scale
    v = (cos * dy - sin * dx) / scale
    return (angle, scale, shift_x, shift_y), yaw, u, v


def _head(rng: np.random.Generator, shape: tuple[int, int], u: np.ndarray, v: np.ndarray, yaw: float) -> _Head:
    """Random skin and hair (colours, skin texture, hair strands), face outline, shading and hair style."""
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * _rgb(*rng.uniform(0.9, 1.1, 3))
    hair_colour = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * _rgb(*rng.uniform(0.85, 1.15, 3))
    skin_texture = 1.0 + 0.06 * _smooth_noise(rng, shape, 6)
    strand_angle = rng.uniform(-0.5, 0.5)
    strand_phase = (math.cos(strand_angle) * u + math.sin(strand_angle) * v) * rng.uniform(120, 260)
    strands = 1.0 + 0.18 * np.sin(strand_phase + 3 * _smooth_noise(rng, shape, 5))
    hair_field = np.clip(hair_colour * (strands * (1.0 + 0.1 * _smooth_noise(rng, shape, 8))), 0.0, 1.0)

    half_width, half_height = rng.uniform(0.26, 0.32), rng.uniform(0.35, 0.41)
    width_at = half_width * (1.0 - rng.uniform(0.12, 0.32) * np.clip(v / half_height, 0.0, 1.0) ** 2)
    radius = np.minimum((u / width_at) ** 2 + (v / half_height) ** 2, 1.5)
    face = radius <= 1.0
    shading = skin_texture * (1.0 - 0.28 * radius * radius * radius)
    style = rng.choice(4, p=[0.4, 0.38, 0.14, 0.08])  # short, long, voluminous, bald
    return _Head(
        u=u, v=v, yaw=yaw, skin=skin, hair_colour=hair_colour, skin_texture=skin_texture, hair_field=hair_field,
        half_width=half_width, half_height=half_height, width_at=width_at, face=face, shading=shading, style=style,
    )  # fmt: skip


def _paint_outline(rng: np.random.Generator, canvas: _Canvas, head: _Head) -> None:
    """The hair behind the head, the neck and shoulders (labelled background, as LaPa does) and the face."""
    u, v, half_width, half_height = head.u, head.v, head.half_width, head.half_height
    if head.style != 3:
        crown = rng.uniform(0.03, 0.07)
        hair_back = (u / (half_width + crown)) ** 2 + ((v + 0.03) / (half_height + crown)) ** 2 <= 1.0
        if head.style == 0:
            hair_back &= v < rng.uniform(-0.05, 0.08)
        elif head.style == 1:
            hair_back |= (np.abs(u) < half_width + rng.uniform(0.05, 0.11)) & (v > -0.1) & (v < rng.uniform(0.3, 0.65))
        else:
            big = half_width + rng.uniform(0.1, 0.16)
            hair_back |= (u / big) ** 2 + ((v + 0.08) / (big * 1.1)) ** 2 <= 1.0
        canvas.paint(hair_back, head.hair_field, HAIR)

    neck_width = half_width * rng.uniform(0.45, 0.6)
    neck_colour = head.skin * (rng.uniform(0.72, 0.9) * head.skin_texture)
    canvas.paint((np.abs(u) < neck_width) & (v > 0.1), neck_colour, BACKGROUND)
    shoulders = v > half_height + rng.uniform(0.08, 0.16) - 0.5 * np.maximum(np.abs(u) - neck_width, 0.0)
    cloth = _rgb(*rng.uniform(0.0, 1.0, 3)) * (1.0 + 0.1 * _smooth_noise(rng, u.shape, 7))
    canvas.paint(shoulders, cloth, BACKGROUND)
    canvas.paint(head.face, head.skin * head.shading, SKIN)


def _paint_eyes(rng: np.random.Generator, features: _Canvas, head: _Head, centre_u: float) -> float:
    """Both brows and eyes (the far ones narrowed by the yaw) on the features' window; returns the eyes' v."""
    fu, fv = head.u, head.v
    eye_v, eye_gap = rng.uniform(-0.07, -0.02), rng.uniform(0.095, 0.125)
    eye_width, openness = rng.uniform(0.045, 0.06), rng.uniform(0.3, 0.5)
    brow_colour = head.hair_colour * rng.uniform(0.6, 1.0) if head.style != 3 else head.skin * 0.45
    brow_lift, gaze = rng.uniform(0.055, 0.08), rng.uniform(-0.3, 0.3)
    iris_colour = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]
    for side, brow_id, eye_id in ((1.0, LEFT_BROW, LEFT_EYE), (-1.0, RIGHT_BROW, RIGHT_EYE)):
        far = max(side * head.yaw, 0.0)
        du = (fu - centre_u - side * eye_gap * (1.0 - 0.6 * far)) / (1.0 - 1.3 * far)
        brow_half = eye_width * rng.uniform(1.2, 1.5)
        inner = np.clip(0.5 - 0.5 * side * du / brow_half, 0.0, 1.0)
        brow_centre = eye_v - brow_lift - rng.uniform(0.01, 0.025) * (1 - (du / brow_half) ** 2)
        brow_thickness = rng.uniform(0.008, 0.013) * (0.6 + 0.7 * inner)
        brow = (np.abs(du) < brow_half) & (np.abs(fv - brow_centre) < brow_thickness)
        features.paint(brow, brow_colour * head.skin_texture, brow_id)

        ev = fv - eye_v
        eye_height = eye_width * openness
        eye_radius = (du / eye_width) ** 2 + (ev / eye_height) ** 2
        iris = (du - gaze * eye_width) ** 2 + ev * ev < (0.75 * eye_height) ** 2
        lid = np.clip(1.0 - 3.0 * (eye_radius - 0.6), 0.35, 1.0)
        features.paint(eye_radius <= 1.0, np.where(iris, iris_colour, _SCLERA) * lid, eye_id)
    return eye_v


def _paint_nose(rng: np.random.Generator, features: _Canvas, head: _Head, centre_u: float, eye_v: float) -> float:
    """The nose from just below the eyes, shaded, with nostrils, on the features' window; returns its bottom v."""
    fv = head.v
    nu = head.u - centre_u * 1.4
    nose_top, nose_bottom = eye_v + rng.uniform(0.0, 0.02), rng.uniform(0.09, 0.13)
    nose_narrow, nose_wide = rng.uniform(0.018, 0.03), rng.uniform(0.045, 0.065)
    depth = np.clip((fv - nose_top) / (nose_bottom - nose_top), 0.0, 1.0)
    nose_half = nose_narrow + (nose_wide - nose_narrow) * depth * depth
    nose = (np.abs(nu) < nose_half) & (fv >= nose_top) & (fv <= nose_bottom)
    nose |= (nu / nose_wide) ** 2 + ((fv - nose_bottom) / 0.022) ** 2 <= 1.0
    nose_shade = 0.82 + 0.14 * np.cos(np.clip(nu / nose_half, -1.5, 1.5))
    nostrils = ((np.abs(nu) - nose_wide * 0.5) / (nose_wide * 0.28)) ** 2 + ((fv - nose_bottom - 0.006) / 0.009) ** 2
    features.paint(nose, head.skin * (head.shading * np.where(nostrils < 1.0, 0.45, nose_shade)), NOSE)
    return nose_bottom


def _paint_mouth(rng: np.random.Generator, features: _Canvas, head: _Head, centre_u: float, nose_bottom: float) -> None:
    """Upper lip, lower lip and, where they part, the inner mouth with teeth, below the nose."""
    fv, texture = head.v, head.skin_texture
    mouth_v = nose_bottom + rng.uniform(0.06, 0.1)
    mu = (head.u - centre_u * 1.1) / rng.uniform(0.075, 0.11)
    along = np.clip(1.0 - mu * mu, 0.0, None)
    within = along > 0.0
    line = mouth_v - rng.uniform(-0.015, 0.03) * mu * mu
    half_gap = (rng.uniform(0.006, 0.02) if rng.random() < 0.6 else 0.0) * along
    bow = 1.0 - 0.3 * np.exp(-((mu / 0.18) ** 2))
    upper_top = line - half_gap - rng.uniform(0.014, 0.024) * np.sqrt(along) * bow
    lower_bottom = line + half_gap + rng.uniform(0.018, 0.03) * np.sqrt(along)
    lip_colour = head.skin * _LIP_TINT * rng.uniform(0.75, 0.95)
    features.paint(within & (fv >= upper_top) & (fv < line - half_gap), lip_colour * texture, UPPER_LIP)
    features.paint(within & (fv >= line + half_gap) & (fv < lower_bottom), lip_colour * (1.08 * texture), LOWER_LIP)
    inner_mouth = within & (fv >= line - half_gap) & (fv < line + half_gap)
    teeth = fv < line - half_gap * (1.0 - 2.0 * rng.uniform(0.2, 0.45))
    features.paint(inner_mouth, np.where(teeth, _TEETH, _MOUTH_INSIDE), INNER_MOUTH)


def _paint_hairline(rng: np.random.Generator, canvas: _Canvas, head: _Head) -> None:
    """Hair over the forehead (a wavy hairline) and the temples, unless the head is bald."""
    if head.style == 3:
        return
    u, v = head.u, head.v
    wave = rng.uniform(0.0, 0.02) * np.sin(u * rng.uniform(30, 70) + rng.uniform(0, 6.3))
    hairline = -head.half_height * rng.uniform(0.4, 0.7) + rng.uniform(-0.15, 0.15) * u + wave
    temples = (np.abs(u) > head.width_at * rng.uniform(0.82, 0.95)) & (v < rng.uniform(-0.1, 0.1))
    canvas.paint(head.face & ((v < hairline) | temples), head.hair_field, HAIR)


def _paint_occluder(
    rng: np.random.Generator, canvas: _Canvas, head: _Head, grid_x: np.ndarray, grid_y: np.ndarray
) -> None:
    """Now and then (15 %) an ellipse in front of the face, skin-coloured (a hand) or not, labelled background."""
    if rng.random() < 0.15:
        cx, cy = rng.uniform(-0.3, 0.3, 2).tolist()
        rx, ry = rng.uniform(0.05, 0.16, 2).tolist()
        occluder = ((grid_x - cx) / rx) ** 2 + ((grid_y - cy) / ry) ** 2 <= 1.0
        colour = head.skin * rng.uniform(0.8, 1.1) if rng.random() < 0.5 else _rgb(*rng.uniform(0.0, 1.0, 3))
        canvas.paint(occluder, colour * head.skin_texture, BACKGROUND)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (5 taps, edges replicated) over the last two axes of a C x H x W array."""
    offsets = np.arange(-2, 3)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).tolist()
    height, width = image.shape[1:]
    rows = np.concatenate([image[:, :1], image[:, :1], image, image[:, -1:], image[:, -1:]], axis=1)
    image = kernel[0] * rows[:, :height]
    for k in range(1, 5):
        image += kernel[k] * rows[:, k : k + height]
    cols = np.concatenate([image[..., :1], image[..., :1], image, image[..., -1:], image[..., -1:]], axis=2)
    image = kernel[0] * cols[..., :width]
    for k in range(1, 5):
        image += kernel[k] * cols[..., k : k + width]
    return image


def _finish(rng: np.random.Generator, image: np.ndarray) -> torch.Tensor:
    """Blur (random sigma), pixel noise and clipping; 3 x H x W array in, float32 tensor out."""
    image = _blur(image, rng.uniform(0.4, 1.1))
    image += rng.uniform(0.005, 0.035) * rng.standard_normal(image.shape[1:], dtype=np.float32)
    return torch.from_numpy(np.clip(image, 0.0, 1.0, out=image))


class SyntheticFaces(ParsingDataset):
    """``num_images`` procedural faces of ``size`` (int or (H, W)) in the LaPa schema.

    Sample ``index`` depends only on (``seed``, ``split``, ``index``): it is drawn from
    ``numpy.random.default_rng([seed, split number, index])``, so any worker, order or machine gives the same
    image, and the train, val and test splits never share a face.
    """

    schema = LAPA
    splits = SPLITS

    def __init__(
        self,
        num_images: int = 1000,
        size: int | tuple[int, int] = 128,
        seed: int = 0,
        transform: Transform | None = None,
        split: str = "train",
    ) -> None:
        super().__init__(transform)
        if num_images < 1:
            raise ValueError(f"num_images must be positive, got {num_images}")
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        if min(height, width) < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if split not in SPLITS:
            raise ValueError(f"synthetic faces: unknown split {split!r}; choose one of {list(SPLITS)}")
        self.num_images = num_images
        self.size = (height, width)
        self.seed = seed
        self.split = split

    def __len__(self) -> int:
        return self.num_images

    def load(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index])
        image, label = render_face(rng, *self.size)
        return {
            "image": _finish(rng, image),
            "label": torch.from_numpy(label).long(),
            "name": f"synthetic-{self.split}-{self.seed}-{index:06d}",
        }

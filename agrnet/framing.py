"""The framing a face-parsing model was trained in (``FaceFrame``): where a face's five landmarks sit in its
training crops, per label schema. ``agrnet.faces`` aligns every face of a photo to it; whatever needs to know whether
a model can take whole photos (``agrnet predict``, the model cards) asks ``frame_for``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agrnet.data.labels import FASSEG, LabelSchema


@dataclass(frozen=True)
class FaceFrame:
    """The framing a model was trained in: the crop's ``aspect`` (width / height) and the 5 landmarks (x, y) as
    fractions of the crop's width and height, in YuNet's order: the eye on the image's left, the other eye, the
    nose tip, the mouth corner on the image's left, the other corner."""

    aspect: float
    landmarks: tuple[tuple[float, float], ...]

    def size(self, height: int) -> tuple[int, int]:
        """(height, width) in pixels of a crop ``height`` pixels tall."""
        return height, max(1, round(self.aspect * height))

    def points(self, height: int) -> np.ndarray:
        """The landmarks in pixel coordinates of a crop ``height`` pixels tall (5 x 2)."""
        crop_height, crop_width = self.size(height)
        return np.asarray(self.landmarks, dtype=np.float64) * (crop_width, crop_height)

    def widened(self, factor: float) -> FaceFrame:
        """The frame whose crop shows ``factor`` times as much of the photo around the same centre (the face
        ``factor`` times smaller in it): the context view of ``agrnet.faces.parse_photo``."""
        if factor < 1:
            raise ValueError(f"factor: expected a value >= 1, got {factor}")
        landmarks = tuple((0.5 + (x - 0.5) / factor, 0.5 + (y - 0.5) / factor) for x, y in self.landmarks)
        return FaceFrame(self.aspect, landmarks)


FASSEG_FRAME = FaceFrame(
    aspect=0.7271,
    landmarks=((0.3331, 0.4824), (0.6809, 0.4796), (0.5184, 0.6305), (0.3583, 0.7560), (0.6563, 0.7536)),
)
"""FASSEG frontal02's framing, measured by ``measure_frame`` on its 20 train faces: the mean width / height of
the images and the mean of each YuNet landmark relative to its image's width and height (spread between faces:
2 to 5 % of the image)."""
CONTEXT = 2.0
"""How much wider than the model's frame the context view of each face is (``FaceFrame.widened``; 1: none): a face's
crop says what lies inside the frame, its context view (the face 2 times smaller) what lies around it, the hair
above and the neck below that the training crops cut off (``agrnet.faces.parse_photo``). Chosen on FASSEG ``val``
through the photo pipeline (``agrnet evaluate --dataset fasseg --split val --photos --context FACTOR``), first among
1 (none), 1.3, 1.6 and 2 with the first ``fasseg-photo-resnet18``: mean F1 81.8, 85.6, 87.2 and 87.2 (1.6 taken);
then, for the default model ``fasseg-photo-ensemble-resnet18`` at 320 px with flip, among 1.3, 1.6, 2 and 2.5, each
with the crop's parsing inside the crop or the mean of both views' probabilities there: 88.2, 89.9, 90.7 and 89.2
with the crop's (the mean: 88.1, 87.9, 74.7, 65.1), so 2 and the crop's."""
FRAMES: dict[str, tuple[LabelSchema, FaceFrame]] = {FASSEG.name: (FASSEG, FASSEG_FRAME)}
"""The frame of each label schema whose training faces have a known framing, by schema name."""


def frame_for(schema: LabelSchema) -> FaceFrame | None:
    """The frame models of ``schema`` were trained in, or None when no frame is known for it."""
    known, frame = FRAMES.get(schema.name, (None, None))
    return frame if known is not None and known.classes == schema.classes else None


def require_frame(schema: LabelSchema) -> FaceFrame:
    """``frame_for(schema)``, or a ValueError saying that whole photos cannot be aligned for this schema."""
    frame = frame_for(schema)
    if frame is None:
        raise ValueError(
            f"schema {schema.name!r}: no face framing is known for its models, so faces in whole photos cannot be "
            "aligned for them; give images that show one face each in the model's framing (Predictor.parse, "
            "agrnet predict --aligned)"
        )
    return frame

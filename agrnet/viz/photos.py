"""Figures of the photo pipeline (``agrnet.faces``): a whole photo with its detected faces, each face's aligned
crop with its parsing, and the parsing pasted back onto the photo."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from agrnet.data.labels import LabelSchema
from agrnet.faces import PhotoParsing
from agrnet.predict import ImageLike, as_image_tensor, blend
from agrnet.viz.style import BOOK_WIDTH, book_figure, book_styled, legend_handles


@book_styled
def photo_parsing_figure(image: ImageLike, parsing: PhotoParsing, schema: LabelSchema, alpha: float = 0.5) -> Figure:
    """The photo with each detected face's box and 5 landmarks; the first face's aligned crop tinted with its
    parsing (the model's view); the photo tinted with the parsing pasted back (``PhotoParsing.label``)."""
    photo = as_image_tensor(image)
    height, width = photo.shape[-2:]
    panels = 3 if parsing.crops else 2
    figure = book_figure(height=BOOK_WIDTH / panels * max(height / width, 1.2) + 0.8)
    axes = figure.subplots(1, panels)
    axes[0].imshow(photo.permute(1, 2, 0).numpy())
    for face in parsing.faces:
        x, y, w, h = face.box
        axes[0].add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="yellow", linewidth=1.5))
        axes[0].scatter(face.landmarks[:, 0] - 0.5, face.landmarks[:, 1] - 0.5, s=8, color="red")
    axes[0].set_title(f"{len(parsing.faces)} face(s) detected")
    if parsing.crops:
        crop, crop_label = parsing.crops[0], parsing.crop_labels[0]
        axes[1].imshow(blend(crop, crop_label, schema, alpha).permute(1, 2, 0).numpy())
        axes[1].set_title("aligned crop, parsed")
    axes[-1].imshow(blend(photo, parsing.label, schema, alpha).permute(1, 2, 0).numpy())
    axes[-1].set_title("pasted back")
    for ax in axes:
        ax.set_axis_off()
    present = sorted(set(torch.cat([parsing.label.flatten(), *(c.flatten() for c in parsing.crop_labels)]).tolist()))
    figure.legend(handles=legend_handles(schema, present), loc="outside lower center", ncols=6, frameon=False)
    return figure

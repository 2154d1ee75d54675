"""What the model's outputs say, computed without drawing anything (the figures of ``agrnet.viz`` draw it):
where the vertices lie and whether on their own class, the learned adjacency A read by class pair against its
random initialisation, the response maps of P, distances to the boundaries between labels, the preliminary map Z0
against the final Y, and where the wrong pixels are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agrnet.data.edges import label_edges
from agrnet.data.labels import IGNORE_INDEX, LabelSchema
from agrnet.diagnostics import label_at_grid
from agrnet.metrics import ConfusionMatrix
from agrnet.model import AGRNetOutput


def output_item(tensor: torch.Tensor | None, index: int, what: str) -> torch.Tensor:
    """Item ``index`` of a batched output field, on the CPU; a clear error when the model did not produce it."""
    if tensor is None:
        raise ValueError(f"output.{what} is None: the model was built without the graph projection it comes from")
    return tensor[index].detach().float().cpu() if tensor.ndim > 1 else tensor.detach().float().cpu()


def feature_size(output: AGRNetOutput, image_size: tuple[int, int]) -> tuple[int, int]:
    """(H1, W1), the size of the 1/4-resolution map that ``vertex_index`` and P index, for an input of
    ``image_size`` (H, W): read from Z0 or E, else the factorisation of H1 * W1 closest to the image's aspect."""
    for field in (output.raw_logits, output.edge_logits):
        if field is not None:
            return int(field.shape[-2]), int(field.shape[-1])
    if output.projection is None:
        raise ValueError("output.projection is None: the model was built without the graph projection")
    pixels = int(output.projection.shape[-1])
    aspect = image_size[0] / image_size[1]
    height = min((h for h in range(1, pixels + 1) if pixels % h == 0), key=lambda h: abs(h / (pixels // h) - aspect))
    return height, pixels // height


def vertex_positions(
    output: AGRNetOutput, image_size: tuple[int, int], index: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) in the pixels of an image of ``image_size`` (H, W) of each vertex: the centre of its cell of the
    H1 x W1 map that ``vertex_index`` indexes, V values each, class-major like ``vertex_index``."""
    flat = output_item(output.vertex_index, index, "vertex_index").long()
    return cell_centres(flat, feature_size(output, image_size), image_size)


def cell_centres(
    flat: torch.Tensor, grid: tuple[int, int], image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) in the continuous pixel coordinates of an image of ``image_size`` (H, W) of the centres of the cells
    ``flat`` (row-major indices) of an H1 x W1 ``grid`` laid over it."""
    (rows_1, cols_1), (height, width) = grid, image_size
    y = ((flat // cols_1).float() + 0.5) * height / rows_1
    x = ((flat % cols_1).float() + 0.5) * width / cols_1
    return x, y


def response_maps(
    output: AGRNetOutput, schema: LabelSchema, image_size: tuple[int, int], index: int = 0
) -> torch.Tensor:
    """Fig. 11's maps: P (V x H1*W1) summed over each class's K vertices and resized to ``image_size``: Nc x H x W.

    Each pixel's column of P sums to one over the vertices, so the maps sum to one over the classes.
    """
    projection = output_item(output.projection, index, "projection")
    rows_1, cols_1 = feature_size(output, image_size)
    top_k = projection.shape[0] // schema.num_classes
    maps = projection.view(schema.num_classes, top_k, rows_1, cols_1).sum(1)
    return F.interpolate(maps[None], size=image_size, mode="bilinear", align_corners=False)[0]


def vertex_hits(output: AGRNetOutput, label: torch.Tensor, schema: LabelSchema, index: int = 0) -> torch.Tensor:
    """Whether each vertex lies on a pixel of its own class: Nc x K bool, row c for the K vertices of class c.

    ``label`` is the face's ground truth (H x W, at any size: it is read at the centre of each vertex's cell of the
    1/4 map, ``label_at_grid``). In a trained model nearly all of them should (Sec. V-C 4): the vertices are the
    pixels where Z0 is most confident.
    """
    flat = output_item(output.vertex_index, index, "vertex_index").long()
    grid = feature_size(output, (int(label.shape[-2]), int(label.shape[-1])))
    under = label_at_grid(label.detach().cpu().long(), grid).flatten()[flat]
    top_k = flat.numel() // schema.num_classes
    return under.view(schema.num_classes, top_k) == torch.arange(schema.num_classes)[:, None]


def own_class_share(hits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The share of vertices on a pixel of their own class, per class (Nc floats), over the ``vertex_hits`` of
    several faces; ``.mean()`` of it is the share over all vertices (every class has K of them)."""
    if not hits:
        raise ValueError("hits: no faces")
    return torch.stack([h.float() for h in hits]).mean(dim=(0, 2))


#: The quantile of the random-initialisation spread that a class pair of A must pass to count as learned.
RANDOM_QUANTILE = 0.95


def reasoning_update(
    vertices: torch.Tensor, reasoned: torch.Tensor, schema: LabelSchema, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the reasoning of Eq. (4) does to the vertices XG of the first item (``vertices`` -> ``reasoned``), per
    class (the mean over its ``top_k`` vertices): the size of the update relative to XG and the cosine of X̂G and
    XG."""
    update = reasoned - vertices
    size = update.norm(dim=-1) / vertices.norm(dim=-1).clamp_min(1e-12)
    ratio = size[0].view(schema.num_classes, top_k).mean(1)
    cosine = torch.cosine_similarity(reasoned, vertices, dim=-1)[0].view(schema.num_classes, top_k).mean(1)
    return ratio, cosine


@dataclass(frozen=True)
class AdjacencyReading:
    """What the learned adjacency A says about pairs of classes, and whether it says more than its initialisation.

    ``blocks`` is Nc x Nc, the mean of each K x K block of A (row: receiving class, column: sending class);
    ``pairs`` its symmetric part (blocks + blocks^T) / 2, one value per unordered pair. ``strongest`` and
    ``weakest`` are (class, class, value) of the most positive and most negative pair of different classes.
    ``random_limit`` is the ``quantile`` quantile of the largest |pair| over ``draws`` random draws of A from its
    initialisation (``nn.Linear``'s, uniform in +-1/sqrt(V)), and ``std`` / ``random_std`` A's spread against the
    initialisation's: when no pair passes ``random_limit`` the pairs are what random weights give as well.
    """

    blocks: torch.Tensor
    pairs: torch.Tensor
    strongest: tuple[int, int, float]
    weakest: tuple[int, int, float]
    random_limit: float
    std: float
    random_std: float
    draws: int
    quantile: float

    @property
    def stands_out(self) -> bool:
        """Whether the strongest or weakest pair lies beyond what the random initialisation gives."""
        return max(abs(self.strongest[2]), abs(self.weakest[2])) > self.random_limit


def _pair_means(matrix: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(blocks, symmetric pairs) of ... x V x V matrices, each ... x Nc x Nc."""
    vertices = matrix.shape[-1]
    top_k = vertices // num_classes
    blocks = matrix.reshape(*matrix.shape[:-2], num_classes, top_k, num_classes, top_k).mean(dim=(-3, -1))
    return blocks, (blocks + blocks.transpose(-1, -2)) / 2


def read_adjacency(
    adjacency: torch.Tensor, schema: LabelSchema, draws: int = 2000, seed: int = 0, quantile: float = RANDOM_QUANTILE
) -> AdjacencyReading:
    """Fig. 7 read by class pair (``AdjacencyReading``), with ``draws`` random initialisations of A (seeded) as the
    yardstick of what a pair's mean weight is without any training."""
    matrix = adjacency.detach().float().cpu()
    vertices = matrix.shape[0]
    if matrix.ndim != 2 or matrix.shape[1] != vertices or vertices % schema.num_classes:
        raise ValueError(f"adjacency: expected V x V, V a multiple of {schema.num_classes}; got {tuple(matrix.shape)}")
    blocks, pairs = _pair_means(matrix, schema.num_classes)
    off = ~torch.eye(schema.num_classes, dtype=torch.bool)
    upper = torch.triu(off, diagonal=1)
    values = pairs[upper]
    rows, cols = upper.nonzero(as_tuple=True)
    high, low = int(values.argmax()), int(values.argmin())
    bound = 1 / math.sqrt(vertices)  # nn.Linear's default initialisation, which GraphReasoning keeps
    generator = torch.Generator().manual_seed(seed)
    random = (torch.rand(draws, vertices, vertices, generator=generator) * 2 - 1) * bound
    random_pairs = _pair_means(random, schema.num_classes)[1][:, upper].abs().amax(dim=1)
    return AdjacencyReading(
        blocks=blocks,
        pairs=pairs,
        strongest=(int(rows[high]), int(cols[high]), float(values[high])),
        weakest=(int(rows[low]), int(cols[low]), float(values[low])),
        random_limit=float(random_pairs.quantile(quantile)),
        std=float(matrix.std()),
        random_std=bound / math.sqrt(3),
        draws=draws,
        quantile=quantile,
    )


def boundary_band(label: torch.Tensor, radius: int = 0, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixels within ``radius`` pixels (Chebyshev distance) of a boundary between two labels (``label_edges``):
    bool, the label's shape (H x W). ``radius=0`` gives the edge pixels themselves."""
    edges = label_edges(label.detach().cpu().long(), ignore_index)
    if radius <= 0:
        return edges
    grown = F.max_pool2d(edges[None, None].float(), 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].bool()


def boundary_distance(
    label: torch.Tensor, ignore_index: int = IGNORE_INDEX, image_border: bool = False
) -> torch.Tensor:
    """Each pixel's Chebyshev distance in pixels to the nearest boundary pixel (``label_edges``; with
    ``image_border`` the outermost rows and columns count as boundary too): int64 H x W; the largest possible
    distance plus one everywhere when the map has no boundary."""
    edges = label_edges(label.detach().cpu().long(), ignore_index)
    if image_border:
        edges[..., [0, -1], :] = True
        edges[..., :, [0, -1]] = True
    distance = torch.full(edges.shape, max(edges.shape) + 1, dtype=torch.long)
    reached, step = edges.clone(), 0
    distance[reached] = 0
    while reached.any() and not reached.all():
        step += 1
        grown = F.max_pool2d(reached[None, None].float(), 3, stride=1, padding=1)[0, 0].bool()
        distance[grown & ~reached] = step
        reached = grown
    return distance


def edge_and_interior_pixels(
    output: AGRNetOutput, label: torch.Tensor, schema: LabelSchema, index: int = 0
) -> tuple[int, int]:
    """Two pixels of the 1/4 map (flat indices into H1 * W1, as P's columns) for Fig. 11, chosen from the face's
    ground truth ``label`` (any size, read with ``label_at_grid``): the **edge pixel**, on a boundary between two
    face components (two classes other than the background and ``ignore_index``) where the predicted edge map E
    is highest (the first such pixel without E); the **interior pixel**, the pixel of a face component farthest
    from any boundary and from the image's border. ValueError when the face has no such boundary."""
    grid_label = label_at_grid(label.detach().cpu().long(), feature_size(output, tuple(label.shape[-2:])))
    face = (grid_label != 0) & (grid_label != schema.ignore_index)
    between = torch.zeros_like(face)
    for shift, dim in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        neighbour = grid_label.roll(shift, dims=dim)
        other = face.roll(shift, dims=dim) & (neighbour != grid_label)
        edge_of_image = torch.zeros_like(face)  # roll wraps around: the wrapped row or column is no neighbour
        edge_of_image.select(dim, 0 if shift == 1 else -1).fill_(True)
        between |= face & other & ~edge_of_image
    if not between.any():
        raise ValueError("label: no boundary between two face components (classes other than the background)")
    if output.edge_logits is not None:
        edge = output_item(output.edge_logits, index, "edge_logits").flatten()
        edge_pixel = int(edge.masked_fill(~between.flatten(), -math.inf).argmax())
    else:
        edge_pixel = int(between.flatten().nonzero()[0])
    distance = boundary_distance(grid_label, schema.ignore_index, image_border=True).masked_fill(~face, -1)
    return edge_pixel, int(distance.flatten().argmax())


def raw_and_final(output: AGRNetOutput, size: tuple[int, int], index: int = 0) -> dict[str, torch.Tensor]:
    """The label maps of the preliminary map Z0 (Eq. 3) and of the final Y (Eq. 7) at ``size`` (H, W, e.g. the
    ground truth's): their logits resized bilinearly, then the argmax, as ``agrnet.evaluate`` scores Y."""
    maps = {"Z0": output_item(output.raw_logits, index, "raw_logits"), "Y": output_item(output.logits, index, "logits")}
    return {
        name: F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False).argmax(1)[0]
        for name, logits in maps.items()
    }


def raw_and_final_scores(
    output: AGRNetOutput,
    label: torch.Tensor,
    schema: LabelSchema,
    index: int = 0,
    into: dict[str, ConfusionMatrix] | None = None,
) -> dict[str, ConfusionMatrix]:
    """A ``ConfusionMatrix`` each for Z0 and Y (``raw_and_final``) against the ground truth ``label`` (H x W), at
    the label's size. With ``into`` (an earlier result) this face is added to those matrices, which pools faces:
    ``scores = raw_and_final_scores(output, label, schema, into=scores)``."""
    scores = into if into is not None else {}
    for name, predicted in raw_and_final(output, (int(label.shape[-2]), int(label.shape[-1])), index).items():
        scores.setdefault(name, ConfusionMatrix(schema.num_classes, schema.ignore_index))
        scores[name].update(predicted, label.detach().cpu())
    return scores


@dataclass(frozen=True)
class ErrorBreakdown:
    """Where a model's wrong pixels are, class by class (``error_breakdown``): Nc-long int64 counts of each ground-
    truth class's labelled pixels (``pixels``), of those mislabelled (``wrong``), of those within ``radius`` pixels
    of a boundary (``near``) and of the mislabelled ones there (``wrong_near``); ``confusion`` is the Nc x Nc
    confusion matrix (rows ground truth)."""

    pixels: torch.Tensor
    wrong: torch.Tensor
    near: torch.Tensor
    wrong_near: torch.Tensor
    confusion: torch.Tensor
    radius: int

    @property
    def error_rate(self) -> torch.Tensor:
        """Per class, the share of its pixels that are mislabelled (NaN for a class without pixels)."""
        return self.wrong.double() / self.pixels.double()

    @property
    def errors_near_boundary(self) -> float:
        """The share of all wrong pixels that lie within ``radius`` of a boundary."""
        return float(self.wrong_near.sum() / self.wrong.sum().clamp_min(1))

    @property
    def pixels_near_boundary(self) -> float:
        """The share of all labelled pixels that lie within ``radius`` of a boundary."""
        return float(self.near.sum() / self.pixels.sum().clamp_min(1))


def error_breakdown(
    predictions: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], schema: LabelSchema, radius: int = 2
) -> ErrorBreakdown:
    """Count, over faces (predictions and ground truths of the same sizes), each class's pixels, its wrong pixels
    and how many of each lie within ``radius`` pixels of a boundary between two labels (``boundary_band``)."""
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"expected as many predictions as labels, at least one; got {len(predictions)}, {len(labels)}")
    keys = ("pixels", "wrong", "near", "wrong_near")
    counts = {key: torch.zeros(schema.num_classes, dtype=torch.long) for key in keys}
    confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
    for prediction, label in zip(predictions, labels, strict=True):
        prediction, label = prediction.detach().cpu().long(), label.detach().cpu().long()
        if prediction.shape != label.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and label {tuple(label.shape)} differ in size")
        valid = label != schema.ignore_index
        wrong = (prediction != label) & valid
        near = boundary_band(label, radius, schema.ignore_index) & valid
        for key, mask in (("pixels", valid), ("wrong", wrong), ("near", near), ("wrong_near", wrong & near)):
            counts[key] += torch.bincount(label[mask], minlength=schema.num_classes)[: schema.num_classes]
        confusion.update(prediction, label)
    return ErrorBreakdown(**counts, confusion=confusion.matrix.clone(), radius=radius)


def image_scores(
    predictions: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], schema: LabelSchema
) -> torch.Tensor:
    """Each face's mean F1 (float64, N), computed as ``ConfusionMatrix.mean_f1`` computes it for a whole split but
    from that face's pixels alone."""
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"expected as many predictions as labels, at least one; got {len(predictions)}, {len(labels)}")
    scores = []
    for prediction, label in zip(predictions, labels, strict=True):
        confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
        confusion.update(prediction.detach().cpu().long(), label.detach().cpu().long())
        scores.append(confusion.mean_f1())
    return torch.tensor(scores, dtype=torch.float64)


def largest_changes(before: torch.Tensor, after: torch.Tensor, count: int) -> tuple[list[int], list[int]]:
    """The indices of the ``count`` largest gains of ``after`` over ``before`` (largest first) and of the ``count``
    largest losses (largest first): the rule that picks the faces of the book's baseline-against-AGRNet figure."""
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"expected two score vectors of one length; got {tuple(before.shape)}, {tuple(after.shape)}")
    if not 0 < 2 * count <= len(before):
        raise ValueError(f"count: expected 1 to {len(before) // 2} for {len(before)} scores, got {count}")
    order = torch.argsort(after - before, descending=True, stable=True).tolist()
    return order[:count], order[::-1][:count]

"""ONNX export: the model as a graph from images (N x 3 x H x W in [0, 1]) to logits Y, runnable without PyTorch.

The label schema, the agrnet version and the model configuration travel in the file's metadata
(``metadata_props``: ``agrnet_schema`` and ``agrnet_model_config`` as JSON, ``agrnet_version``, ``input_size``).

The graph is for one input size (any batch size). Adaptive average pooling (the pyramid pooling's bins of 1, 2, 3
and 6 cells, the spatial projection's grid) is exported as two matrix products with the averaging matrices of that
size (``exportable_pooling``): torch's TorchScript exporter takes adaptive pooling only where each bin divides the
feature map, which ruled out most sizes (64 px among them), and the products give the same averages at any size.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agrnet.data.labels import LabelSchema
from agrnet.data.transforms import check_input_size
from agrnet.files import atomic_write, remove_new_folders
from agrnet.version import __version__

OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


class LogitsOnly(nn.Module):
    """The model with a tensor output: images N x 3 x H x W in [0, 1] -> Y, N x Nc x H x W (Eq. 7)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Y, the ``logits`` field of ``AGRNetOutput``."""
        return self.model(images).logits


def averaging_matrix(size: int, bins: int) -> np.ndarray:
    """bins x size: row i averages the cells that adaptive average pooling gives bin i of ``bins`` over ``size``
    cells, floor(i * size / bins) up to ceil((i + 1) * size / bins)."""
    matrix = np.zeros((bins, size), dtype=np.float32)
    for i in range(bins):
        start, end = i * size // bins, -(-(i + 1) * size // bins)
        matrix[i, start:end] = 1 / (end - start)
    return matrix


def _matrix_adaptive_avg_pool2d(images: torch.Tensor, output_size: int | None | tuple[int | None, int | None]) -> Any:
    """``F.adaptive_avg_pool2d`` as rows @ images @ columns^T, for a graph of fixed spatial size."""
    height, width = int(images.shape[-2]), int(images.shape[-1])
    bins = (output_size, output_size) if output_size is None or isinstance(output_size, int) else output_size
    rows = torch.from_numpy(averaging_matrix(height, bins[0] or height)).to(images.device, images.dtype)
    columns = torch.from_numpy(averaging_matrix(width, bins[1] or width)).to(images.device, images.dtype)
    return torch.matmul(torch.matmul(rows, images), columns.t())


@contextlib.contextmanager
def exportable_pooling() -> Iterator[None]:
    """Meanwhile, ``torch.nn.functional.adaptive_avg_pool2d`` (which ``nn.AdaptiveAvgPool2d`` calls too) computes
    its averages as matrix products that every exporter takes at every size."""
    original = torch.nn.functional.adaptive_avg_pool2d
    torch.nn.functional.adaptive_avg_pool2d = _matrix_adaptive_avg_pool2d
    try:
        yield
    finally:
        torch.nn.functional.adaptive_avg_pool2d = original


@contextlib.contextmanager
def _discard_stdout() -> Iterator[None]:
    """Send this process's standard output (file descriptor 1, C++ included) to the null device meanwhile."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _first_sentence(error: BaseException) -> str:
    """The first sentence of an error's message (torch's exporter errors go on with advice and graph dumps)."""
    return str(error).strip().split("\n")[0].split(". ")[0].rstrip(".")


def _torch_export(wrapper: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamo: bool) -> None:
    batch = {0: "batch"}
    options: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset}
    if dynamo:
        dynamic = {"images": {0: torch.export.Dim("batch")}}
        options |= {"dynamo": True, "dynamic_shapes": dynamic, "external_data": False}
    else:
        options |= {"dynamo": False, "dynamic_axes": {INPUT_NAME: batch, OUTPUT_NAME: batch}}
    # When it fails, the TorchScript exporter prints its whole graph (tens of kilobytes) from C++ to stdout.
    quiet = contextlib.nullcontext() if dynamo else _discard_stdout()
    with warnings.catch_warnings(), quiet, exportable_pooling():
        warnings.simplefilter("ignore")  # the tracer's and the legacy exporter's deprecation notices
        torch.onnx.export(wrapper, (example,), str(path), **options)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    size: int | tuple[int, int],
    schema: LabelSchema | None = None,
    opset: int = OPSET,
) -> Path:
    """Write ``model`` as ONNX to ``path`` for inputs of ``size`` (H, W, at least ``MIN_INPUT_SIZE``) and any batch
    size; returns the path.

    Uses torch's TorchScript-based exporter; when it fails and ``onnxscript`` is installed, the dynamo exporter.
    The graph is built in a scratch folder and written to ``path`` atomically once complete, so a failed export
    leaves nothing: neither a partial file nor the folders it would have created.
    """
    if opset < OPSET:
        raise ValueError(f"opset: expected {OPSET} or newer, got {opset}")
    path = Path(path)
    height, width = check_input_size(size, "size")
    parameter = next(model.parameters())
    wrapper = LogitsOnly(model).eval()
    example = torch.rand(1, 3, height, width, device=parameter.device)
    with tempfile.TemporaryDirectory(prefix="agrnet-export-") as scratch:
        draft = Path(scratch) / "model.onnx"
        try:
            _torch_export(wrapper, example, draft, opset, dynamo=False)
        except Exception as legacy_error:
            if importlib.util.find_spec("onnxscript") is None:
                raise RuntimeError(
                    f"ONNX export at {height} x {width} failed ({_first_sentence(legacy_error)}); install onnxscript "
                    "for torch's dynamo exporter"
                ) from legacy_error
            try:
                _torch_export(wrapper, example, draft, opset, dynamo=True)
            except Exception as dynamo_error:
                raise RuntimeError(
                    f"ONNX export at {height} x {width} failed with both exporters: {_first_sentence(legacy_error)}; "
                    f"{_first_sentence(dynamo_error)}"
                ) from dynamo_error
        data = _with_metadata(draft, model, schema, (height, width))
    remove_created = remove_new_folders(path.parent)
    try:
        atomic_write(path, lambda file: file.write(data))
    except BaseException:
        remove_created()
        raise
    return path


def _with_metadata(path: Path, model: nn.Module, schema: LabelSchema | None, size: tuple[int, int]) -> bytes:
    """The exported file at ``path`` with agrnet's metadata, checked, as bytes."""
    import onnx

    graph = onnx.load(str(path))
    properties = {"agrnet_version": __version__, "input_size": json.dumps(list(size))}
    if isinstance(getattr(model, "config", None), dict):
        properties["agrnet_model_config"] = json.dumps(model.config)
    if schema is not None:
        properties["agrnet_schema"] = json.dumps(schema.to_dict())
    onnx.helper.set_model_props(graph, properties)
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The agrnet metadata of an exported file: ``schema`` (LabelSchema or None), ``input_size``, version, config."""
    import onnx

    properties = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    schema = properties.get("agrnet_schema")
    return {
        "agrnet_version": properties.get("agrnet_version"),
        "input_size": tuple(json.loads(properties.get("input_size", "null")) or ()),
        "model_config": json.loads(properties.get("agrnet_model_config", "null")),
        "schema": None if schema is None else LabelSchema.from_dict(json.loads(schema)),
    }


def check_onnx(
    model: nn.Module, path: str | os.PathLike[str], batch: int = 2, atol: float = 1e-3, rtol: float = 1e-3
) -> float:
    """Run the exported file with onnxruntime on random images and compare with the PyTorch logits.

    Returns the largest absolute difference; raises RuntimeError when it exceeds ``atol + rtol * |Y|``, and when
    onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError as error:
        raise RuntimeError("onnxruntime is not installed: pip install 'agrnet[export]' to check the export") from error
    size = read_metadata(path)["input_size"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.rand(batch, 3, *size)
    parameter = next(model.parameters())
    with torch.inference_mode():
        expected = LogitsOnly(model).eval()(images.to(parameter.device)).float().cpu().numpy()
    (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    difference = np.abs(actual - expected)
    if actual.shape != expected.shape or not bool(np.all(difference <= atol + rtol * np.abs(expected))):
        raise RuntimeError(
            f"{path}: onnxruntime output differs from PyTorch (shapes {actual.shape} vs {expected.shape}, "
            f"max |difference| {float(difference.max()):.3g} > atol {atol} + rtol {rtol} x |Y|)"
        )
    return float(difference.max())

"""``agrnet evaluate``: score a checkpoint or shipped weights on a dataset split, print Table II's layout and write
the JSON report (``agrnet.evaluate``); and the command a report records, made to run on any machine for a model card
(``evaluation_command``)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from agrnet.cli.model_source import (
    MissingModelError,
    add_context_option,
    add_inference_options,
    add_model_source,
    add_switches,
    check_context,
    load_model_source,
    model_source_record,
    model_source_words,
)
from agrnet.data.datasets import MappedLabels
from agrnet.data.labels import LabelSchema, label_mapping
from agrnet.data.loading import BAD_DATA
from agrnet.data.transforms import check_input_size
from agrnet.evaluate import (
    check_positive,
    check_scales,
    check_schemas,
    checkpoint_size,
    evaluate,
    format_table,
    reestimate_batchnorm,
    training_config,
)
from agrnet.files import check_writable, write_json
from agrnet.framing import CONTEXT
from agrnet.runtime import AMP_DTYPES, parse_device
from agrnet.version import __version__

SWITCHES = {
    "--photos": "score whole images through the photo pipeline (faces detected, aligned, parsed, pasted back), as "
    "`agrnet predict` parses photos; the default resizes each image whole",
    "--skip-bad": "leave out the images whose files are bad (missing, undecodable, image and label of different "
    "sizes), score the rest, and list each skipped one with its reason on stderr and in the report",
}
"""The options of ``agrnet evaluate`` that take no value, besides ``--flip``, with their help."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet evaluate``."""
    add_model_source(parser)
    parser.add_argument("--dataset", default=None, help="dataset name (default: synthetic faces)")
    parser.add_argument("--data-root", type=Path, default=None, help="root folder of a downloaded dataset")
    parser.add_argument("--split", default="val", help="split to score (default: val)")
    parser.add_argument(
        "--num-images", type=int, default=None,
        help="score only the first N images (synthetic: how many to draw; default: the checkpoint's validation set)",
    )  # fmt: skip
    parser.add_argument(
        "--recompute-bn", default=None, metavar="SPLIT",
        help="recompute BatchNorm's running statistics over this split of the dataset (e.g. the training split) "
        "before scoring; the weights stay as trained",
    )  # fmt: skip
    add_switches(parser, SWITCHES)
    add_context_option(parser)
    add_inference_options(parser, "the checkpoint's", batch_size=1)
    parser.add_argument("--workers", type=int, default=0, help="data-loading processes (default: 0)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")


def build_eval_dataset(
    dataset: str, root: Path | None, split: str, num_images: int | None, payload: Mapping[str, Any], size: int,
    model_schema: LabelSchema, photos: bool = False,
) -> tuple[Dataset, LabelSchema]:  # fmt: skip
    """The split to score and its label schema: images resized for the model by ``EvalTransform(size)``, or whole
    with ``photos`` (the photo pipeline finds and frames the faces itself). Labels of another schema than the
    model's are read through the mapping ``agrnet.data.labels.label_mapping`` has for the two (CelebAMask-HQ as
    FASSEG: the components both label), when there is one.

    Synthetic faces are drawn as the checkpoint's training drew its validation faces (image size, seed, count).
    """
    from agrnet.data.datasets import build_dataset
    from agrnet.data.transforms import EvalTransform

    config = training_config(payload)
    extra: dict[str, Any] = {}
    if dataset == "synthetic":
        count = num_images or config.get("num_val_images") or 100
        extra = {"num_images": count, "size": int(config.get("size") or size), "seed": int(config.get("seed") or 0)}
    transform = None if photos else EvalTransform(size)
    data = build_dataset(dataset, root, split, transform=transform, **extra)
    mapping = label_mapping(data.schema, model_schema)
    if mapping is not None:
        data = MappedLabels(data, mapping, transform)
    if num_images is not None and len(data) > num_images:
        return Subset(data, range(num_images)), data.schema
    return data, data.schema


def check_model_dataset(
    source: str, model_schema: LabelSchema, data_schema: LabelSchema, payload: Mapping[str, Any], chosen: bool
) -> None:
    """``check_schemas`` for ``agrnet evaluate``; when no ``--dataset`` was ``chosen`` (synthetic faces by default)
    and the model predicts another schema, say so and name the dataset it was trained on."""
    if chosen or model_schema.classes == data_schema.classes:
        check_schemas(model_schema, data_schema, source)
        return
    config = training_config(payload)
    trained = " ".join(
        f"--{name.replace('_', '-')} {config[name]}" for name in ("dataset", "data_root") if config.get(name)
    )
    hint = f"pass {trained}" if trained else f"pass --dataset and --data-root of a {model_schema.name!r} dataset"
    raise ValueError(
        f"{source} predicts the {model_schema.name!r} schema ({model_schema.num_classes} classes) but no "
        f"--dataset was given, and the default synthetic faces use {data_schema.name!r} "
        f"({data_schema.num_classes} classes): {hint}"
    )


PORTABLE_ROOTS = {"fasseg": "data/fasseg", "celebamask-hq": "data/celebamask-hq"}
"""Data roots a model card names, by dataset: where ``agrnet download`` puts the dataset."""
EVALUATE_DEFAULTS = {"--batch-size": "1", "--amp": "none", "--device": "auto"}
"""Options of ``agrnet evaluate`` that a card's command leaves out when they hold their default."""


def options_without_value() -> set[str]:
    """The options of ``agrnet evaluate`` that take no value: those of its parser's actions that consume no
    argument (``store_true``, ``store_false``)."""
    parser = argparse.ArgumentParser(add_help=False)
    configure_parser(parser)
    return {flag for action in parser._actions if action.nargs == 0 for flag in action.option_strings}


def evaluation_command(name: str, command: str) -> str:
    """The recorded ``agrnet evaluate CHECKPOINT ...`` ``command`` as one that runs on any machine: ``--weights
    name`` instead of the checkpoint, the data root where ``agrnet download`` puts the dataset (``PORTABLE_ROOTS``;
    other roots must be relative), options at their defaults left out. ValueError when it names an absolute path."""
    words = shlex.split(command)
    if words[:2] != ["agrnet", "evaluate"]:
        raise ValueError(f"metrics command {command!r}: expected an `agrnet evaluate` command")
    switches = options_without_value()
    options: list[str] = []
    rest = iter(words[2:])
    dataset = next((words[i + 1] for i, word in enumerate(words[:-1]) if word == "--dataset"), "synthetic")
    for word in rest:
        if not word.startswith("--"):
            continue  # the checkpoint, replaced by --weights
        value = None if word in switches else next(rest, "")
        if word in ("--weights", "--out") or (word in EVALUATE_DEFAULTS and EVALUATE_DEFAULTS[word] == value):
            continue
        if word == "--data-root":
            value = PORTABLE_ROOTS.get(dataset, value)
            if Path(value).is_absolute():
                raise ValueError(f"metrics command {command!r}: --data-root {value} is a path of one machine")
        options += [word] if value is None else [word, value]
    return shlex.join(["agrnet", "evaluate", "--weights", name, *options])


def _command(args: argparse.Namespace, size: int, flip_default: bool) -> str:
    words = ["agrnet", "evaluate", *model_source_words(args), "--dataset", args.dataset, "--split", args.split]
    words += ["--data-root", str(args.data_root)] if args.data_root is not None else []
    words += ["--num-images", str(args.num_images)] if args.num_images is not None else []
    words += ["--size", str(size), "--batch-size", str(args.batch_size), "--amp", args.amp, "--device", args.device]
    words += ["--flip"] if args.flip else ["--no-flip"] if flip_default else []
    words += ["--scales", *(f"{scale:g}" for scale in args.scales)] if args.scales != (1.0,) else []
    words += ["--photos"] if args.photos else []
    words += ["--context", f"{args.context:g}"] if args.photos and args.context not in (None, CONTEXT) else []
    words += ["--recompute-bn", args.recompute_bn] if args.recompute_bn is not None else []
    words += ["--skip-bad"] if args.skip_bad else []
    return shlex.join(words)


def score_whole_photos(
    model: nn.Module, schema: LabelSchema, dataset: Dataset, device: torch.device, size: int, args: argparse.Namespace
) -> dict[str, Any]:
    """``--photos``: the split scored through the photo pipeline (``agrnet.faces.score_photos``), in the report's
    usual form; the faces found in each image and the images without one are in it too."""
    from agrnet.faces import FaceDetector, score_photos
    from agrnet.framing import require_frame
    from agrnet.predict import Predictor

    if args.skip_bad:
        raise ValueError("--skip-bad: not available with --photos")
    predictor = Predictor(
        model, schema, device=device, size=size, flip=args.flip, amp=AMP_DTYPES[args.amp], scales=args.scales
    )
    report = score_photos(predictor, dataset, FaceDetector(), require_frame(schema), context=args.context)
    return {**report, "flip": args.flip, "scales": list(args.scales), "skipped": []}


def run(args: argparse.Namespace) -> int:
    """``agrnet evaluate``: print the Table II layout and write the JSON report."""
    chosen = args.dataset is not None
    args.dataset = args.dataset or "synthetic"
    try:
        check_positive("--num-images", args.num_images)
        check_positive("--size", args.size)
        if args.size is not None:
            check_input_size(args.size, "--size")
        check_positive("--batch-size", args.batch_size)
        check_context(args, args.photos, "which agrnet evaluate scores with --photos")
        if args.workers < 0:
            raise ValueError(f"--workers: expected an integer >= 0, got {args.workers}")
        if args.out is not None:
            check_writable(args.out, "--out")
        device = parse_device(args.device)
        model, schema, payload = load_model_source(args, map_location=device)
        flip_default = bool(payload.get("flip", False))  # shipped weights' ModelWeights.flip; off for a checkpoint
        args.flip = flip_default if args.flip is None else args.flip
        size = args.size or checkpoint_size(payload)
        args.scales = check_scales(args.scales or (1.0,), (size, size), "--scales")
        dataset, data_schema = build_eval_dataset(args.dataset, args.data_root, args.split, args.num_images, payload,
                                                  size, schema, args.photos)  # fmt: skip
        source = f"weights {args.weights}" if args.weights is not None else f"checkpoint {args.checkpoint}"
        check_model_dataset(source, schema, data_schema, payload, chosen)
        if args.recompute_bn is not None:
            statistics, _ = build_eval_dataset(args.dataset, args.data_root, args.recompute_bn, None, payload, size,
                                               schema)  # fmt: skip
            reestimate_batchnorm(model, statistics, device, max(args.batch_size, 8))
    except MissingModelError:
        print(
            "agrnet evaluate: error: a checkpoint or --weights NAME is needed. Score shipped weights (`agrnet weights "
            "list`), or train a model with `agrnet train` (synthetic faces by default, no download) and pass the "
            "checkpoint it writes: `agrnet evaluate <run folder>/best.pt`",
            file=sys.stderr,
        )
        return 2
    except (ValueError, OSError, RuntimeError) as error:
        print(f"agrnet evaluate: error: {error}", file=sys.stderr)
        return 2
    try:
        if args.photos:
            report = score_whole_photos(model, schema, dataset, device, size, args)
        else:
            report = evaluate(
                model, dataset, schema, device, flip=args.flip, batch_size=args.batch_size, num_workers=args.workers,
                amp=AMP_DTYPES[args.amp], progress=True, skip_bad=args.skip_bad, scales=args.scales,
            )  # fmt: skip
    except BAD_DATA as error:
        hint = "" if args.skip_bad else "; pass --skip-bad to score the other images and list the bad ones"
        print(f"agrnet evaluate: error: {error}{hint}", file=sys.stderr)
        return 2
    if report["skipped"]:
        print(f"skipped {len(report['skipped'])} image(s) whose files are bad:", file=sys.stderr)
        for message in report["skipped"]:
            print(f"  {message}", file=sys.stderr)
    report = {
        "command": _command(args, size, flip_default),
        "agrnet_version": __version__,
        **model_source_record(args, payload),
        "checkpoint_agrnet_version": payload.get("agrnet_version"),
        "checkpoint_step": payload.get("step"),
        "dataset": args.dataset,
        "split": args.split,
        "size": size,
        **({"labels_read_as": schema.name} if isinstance(dataset, MappedLabels) else {}),
        "pipeline": "photo" if args.photos else "resize",
        "batchnorm_recomputed_on": args.recompute_bn,
        **report,
    }
    print(format_table(report, schema, report.get("labels_read_as", args.dataset)))
    if args.out is not None:
        try:
            write_json(args.out, report)
        except OSError as error:  # the folder changed since the check
            print(f"agrnet evaluate: error: --out {args.out}: {error.strerror}", file=sys.stderr)
            return 2
        print(f"report written to {args.out}")
    return 0

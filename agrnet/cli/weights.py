"""``agrnet weights``: list, show, verify, export, rescore and retrain the trained weights of ``agrnet.weights``."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from agrnet import weights
from agrnet.cli.evaluate import evaluation_command
from agrnet.weights import ENV_VAR, ModelWeights, metrics_summary


def _metric_text(entry: ModelWeights) -> str:
    value = entry.metrics.get("mean_f1")
    where = f"{entry.metrics.get('dataset')} {entry.metrics.get('split')}"
    return f"mean F1 {100 * value:.1f} ({where})" if value is not None else f"no score ({where})"


def format_list(entries: dict[str, ModelWeights | ValueError]) -> str:
    """``agrnet weights list``: one row per entry (name, schema, metric, size, training data, terms); an entry
    whose metadata cannot be read is listed as broken, with the reason."""
    header = ("name", "schema", "metric", "size", "training data", "terms")
    rows = [header] + [
        (name, e.schema["name"], _metric_text(e), f"{e.size_bytes / 2**20:.1f} MiB", e.training_data,
         f"{e.terms} <{e.terms_url}>") if isinstance(e, ModelWeights) else (name, "broken", "", "", "", str(e))
        for name, e in entries.items()
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]) for row in rows)


def retrain_argv(command: str) -> list[str]:
    """The recorded command as arguments, with ``agrnet`` run by this interpreter (``python -m agrnet``)."""
    words = shlex.split(command)
    return [sys.executable, "-m", "agrnet", *words[1:]] if words[:1] == ["agrnet"] else words


def read_reports(paths: list[Path]) -> list[dict[str, Any]]:
    """The ``agrnet evaluate --out`` reports at ``paths``; ValueError naming the file that is not one."""
    reports = []
    for path in paths:
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"--metrics {path}: cannot be read as a JSON report: {error}") from error
    return reports


def score_summaries(name: str, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The metadata's scores of entry ``name`` from ``agrnet evaluate --out`` reports: each one's scores, what they
    were measured on and the command that measures them on any machine (``evaluation_command``)."""
    summaries = []
    for index, report in enumerate(reports):
        if not {"dataset", "split", "mean_f1"} <= set(report):
            raise ValueError(f"--metrics #{index + 1}: expected an `agrnet evaluate --out` report (with dataset, "
                             "split, mean_f1)")  # fmt: skip
        summary = metrics_summary(report, report["dataset"], report["split"])
        if report.get("command"):
            summary["command"] = evaluation_command(name, report["command"])
        summaries.append(summary)
    return summaries


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet weights``."""
    parser.add_argument(
        "--dir", type=Path, default=None, help=f"registry folder (default: ${ENV_VAR}, else the package's)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the trained models: name, schema, metric, size, training data, terms")
    show = actions.add_parser("show", help="print a model card")
    show.add_argument("name", help="entry name, e.g. fasseg-resnet18")
    verify = actions.add_parser("verify", help="check every entry's (or the named ones') files and sha256")
    verify.add_argument("names", nargs="*", help="entry names (default: all)")
    export = actions.add_parser("export", help="write an entry (fp16 safetensors, metadata, card) from a checkpoint")
    export.add_argument(
        "checkpoint", type=Path, nargs="+",
        help="checkpoint written by `agrnet train` (last.pt or best.pt); several: one ensemble of those trainings",
    )  # fmt: skip
    export.add_argument("--name", required=True, help="entry name: lowercase letters, digits, hyphens")
    export.add_argument("--terms", required=True, help="the training data's terms, in short")
    export.add_argument("--terms-url", required=True, help="where those terms are published")
    export.add_argument("--training-data", default=None, help="what it was trained on (default: dataset and split)")
    export.add_argument(
        "--command", dest="train_command", default=None,
        help="the command that trained it (default: `agrnet train` rebuilt from its config)",
    )  # fmt: skip
    export.add_argument("--commit", default=None, help="the git commit that trained it (default: this checkout's)")
    metrics_help = ("an `agrnet evaluate --out` report to record (repeatable: the first is the entry's main score)")
    export.add_argument("--metrics", type=Path, action="append", default=[], help=metrics_help)
    export.add_argument(
        "--flip", action="store_true",
        help="the model parses with flip test-time augmentation by default (its --metrics measured with it)",
    )  # fmt: skip
    export.add_argument("--force", action="store_true", help="replace an entry of the same name")
    rescore = actions.add_parser("rescore", help="record `agrnet evaluate --weights` reports as an entry's scores")
    rescore.add_argument("name", help="entry name")
    rescore.add_argument(
        "--metrics", type=Path, action="append", required=True,
        help="an `agrnet evaluate --out` report to record (repeatable): it replaces the entry's score on the same "
        "dataset, split and pipeline, or is added after its scores",
    )  # fmt: skip
    retrain = actions.add_parser("retrain", help="run the command that trained an entry")
    retrain.add_argument("name", help="entry name")
    retrain.add_argument("--dry-run", action="store_true", help="print the command only")


def _export(args: argparse.Namespace) -> int:
    scores = score_summaries(args.name, read_reports(args.metrics))
    entry = weights.export_weights(
        args.checkpoint, args.name, args.terms, args.terms_url, training_data=args.training_data,
        command=args.train_command, commit=args.commit, scores=scores, out_dir=args.dir, overwrite=args.force,
        flip=args.flip,
    )  # fmt: skip
    print(f"wrote {entry.path} ({entry.size_bytes / 2**20:.2f} MiB, sha256 {entry.sha256})")
    print(f"wrote {entry.directory / (entry.name + '.json')} and {entry.directory / (entry.name + '.md')}")
    difference = entry.fp16_max_abs_logit_diff
    print(f"fp16 storage: max |logit difference| {difference:.3e} on a random {entry.input_size} px image")
    return 0


def _list(args: argparse.Namespace) -> int:
    entries = weights.read_entries(args.dir)
    print(format_list(entries) if entries else f"no trained weights in {weights.weights_dir(args.dir)}")
    return 0


def _rescore(args: argparse.Namespace) -> ModelWeights:
    reports = read_reports(args.metrics)
    entry = weights.get(args.name, args.dir)
    weights.check_reports(entry, reports)
    return weights.rescore(entry, score_summaries(entry.name, reports))


def _verify(args: argparse.Namespace) -> int:
    results = weights.verify(args.names, args.dir)
    for name, problem in results.items():
        print(f"{name}: ok" if problem is None else f"{name}: broken: {problem}")
    if not results:
        print(f"no trained weights in {weights.weights_dir(args.dir)}")
    return 1 if any(problem is not None for problem in results.values()) else 0


def run(args: argparse.Namespace) -> int:
    """``agrnet weights``: 0 on success, 1 on an unknown name, a broken entry or bad input (one line), else the
    retrain's status."""
    try:
        if args.action == "export":
            return _export(args)
        if args.action == "list":
            return _list(args)
        if args.action == "verify":
            return _verify(args)
        if args.action == "rescore":
            entry = _rescore(args)
            print(f"wrote {len(entry.scores())} score(s) into {entry.directory / (entry.name + '.json')} and its card")
            return 0
        entry = weights.get(args.name, args.dir)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"agrnet weights: error: {error}", file=sys.stderr)
        return 1
    if args.action == "show":
        print(weights.model_card(entry))
        return 0
    print(f"# {entry.name}: trained at commit {entry.commit} (git checkout {entry.commit} for the exact code)")
    print(entry.command)
    if args.dry_run:
        return 0
    return subprocess.run(retrain_argv(entry.command)).returncode

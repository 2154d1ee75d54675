"""`agrnet experiment`: trainings of a fixed number of steps on a tiny FASSEG-layout tree, scores per yaw, paired
differences, the results file, resuming."""

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from agrnet.checkpoint import load_model
from agrnet.cli import main as cli_main
from agrnet.cli.experiment import command_line, configure_parser, run_experiment
from agrnet.config import preset_config
from agrnet.data.datasets import Fasseg
from agrnet.data.labels import FASSEG as FASSEG_SCHEMA
from agrnet.data.transforms import EvalTransform
from agrnet.evaluate import evaluate
from agrnet.experiments import (
    EXPERIMENTS,
    Variant,
    class_table,
    concrete_settings,
    experiment_precision,
    flip_rule_line,
    interval_text,
    load_results,
    paired,
    paired_table,
    parts_table,
    progress,
    rerun_table,
    rule_line,
    run_folder,
    run_settings,
    same_training,
    summarise,
    sure_rule_line,
)
from agrnet.experiments.runner import shared_record
from agrnet.stats import verdict
from agrnet.training import Trainer, train

TINY_SETTINGS = {"size": 32, "channels": 8, "batch_size": 2, "threads": 1, "train_split": "train+multipose-train"}
TINY = [word for key, value in TINY_SETTINGS.items() if key != "train_split" for word in ("--set", f"{key}={value}")]
YAWS = ("-15", "0", "+15")


def _face(path_rgb: Path, path_label: Path, rng: np.random.Generator) -> None:
    """A 40 x 32 'face': blocks of every FASSEG class, drawn in its palette colours, and a noisy image of them."""
    ids = np.zeros((40, 32), dtype=np.int64)
    ids[4:12, 6:26] = 2  # hair
    ids[12:36, 6:26] = 1  # skin
    ids[16:20, 9:14] = ids[16:20, 18:23] = 3  # eyes
    ids[20:27, 14:18] = 4  # nose
    ids[29:32, 11:21] = 5  # mouth
    colours = FASSEG_SCHEMA.palette[ids]
    image = np.clip(colours.astype(np.float64) * 0.7 + rng.normal(0, 20, colours.shape), 0, 255).astype(np.uint8)
    path_rgb.parent.mkdir(parents=True, exist_ok=True)
    path_label.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path_rgb)
    Image.fromarray(colours).save(path_label)


def resident_mib() -> float:
    """This process's resident memory now (Linux), in MiB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture
def tiny_fasseg(tmp_path: Path) -> Path:
    """frontal02 (5 train, 2 test) and multipose01 (2 images at each of 3 yaws) in the release layout: enough for
    FASSEG's ``val`` split (4 frontal02 faces and one multipose person)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fasseg"
    for part, count in (("Train", 5), ("Test", 2)):
        for n in range(1, count + 1):
            _face(root / "V2" / f"{part}_RGB" / f"{n}.png", root / "V2" / f"{part}_Labels" / f"{n}.png", rng)
    for yaw in YAWS:
        for n in (1, 2):
            _face(root / "V3" / "Train_RGB" / yaw / f"p{n}.png", root / "V3" / "Train_labels" / yaw / f"p{n}.png", rng)
    return root


def test_summarise_gives_mean_and_sample_std_over_seeds() -> None:
    def report(mean_f1: float, skin: float | None) -> dict:
        return {"mean_f1": mean_f1, "miou": 0.5, "pixel_accuracy": 0.9, "mean_accuracy": 0.7, "f1": {"skin": skin}}

    runs = [
        {"variant": "full", "seed": 0, "metrics": {"test": report(0.80, 0.90)}},
        {"variant": "full", "seed": 1, "metrics": {"test": report(0.90, 0.96)}},
        {"variant": "baseline", "seed": 0, "metrics": {"test": report(0.70, 0.85)}},
    ]
    summary = summarise(runs)
    assert summary["full"]["test"]["mean_f1"]["mean"] == pytest.approx(0.85)
    assert summary["full"]["test"]["mean_f1"]["std"] == pytest.approx(math.sqrt(0.005))  # (0.05**2 * 2) / (2 - 1)
    skin = summary["full"]["test"]["f1"]["skin"]
    assert skin == {"mean": pytest.approx(0.93), "std": pytest.approx(math.sqrt(2 * 0.03**2)), "n": 2}
    assert summary["baseline"]["test"]["mean_f1"] == {"mean": 0.70, "std": None, "n": 1}
    # A class absent from an image set and its prediction has no F1 (None): left out of the mean.
    runs.append({"variant": "baseline", "seed": 1, "metrics": {"test": report(0.60, None)}})
    assert summarise(runs)["baseline"]["test"]["f1"]["skin"] == {"mean": 0.85, "std": None, "n": 1}


@pytest.mark.slow
def test_domain_gap_trains_its_steps_scores_by_yaw_and_resumes(
    tiny_fasseg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, runs_dir = tmp_path / "results" / "gap.json", tmp_path / "runs"
    argv = ["experiment", "fasseg-domain-gap", "--set", "steps=3", *TINY, "--set", "num_val_images=1"]
    argv += ["--data-root", str(tiny_fasseg), "--out", str(out), "--runs-dir", str(runs_dir)]
    assert cli_main(argv) == 0
    results = json.loads(out.read_text())
    assert results["experiment"] == "fasseg-domain-gap" and results["command"].startswith("agrnet experiment")
    assert "steps=3" in results["command"] and "size=32" in results["command"]
    assert set(results["versions"]) >= {"agrnet", "torch", "torchvision", "python"}
    assert results["machine"]["cpu_count"] >= 1 and len(results["load_average_start"]) == 3
    assert isinstance(results["machine"]["native_bf16"], bool)
    assert results["protocol"]["steps"] == 3 and results["protocol"]["amp"] in ("none", "bf16")
    assert results["precision"]["reason"] and results["precision"]["timings_s"], "probed once, for every run"
    assert results["seeds_planned"] == [0] and results["seeds_done"] == [0] and results["complete"]
    assert results["wall_time_s"] > 0 and results["cpu_time_s"] > 0

    runs = {run["variant"]: run for run in results["runs"]}
    assert set(runs) == {"frontal02 -> multipose", "multipose -> frontal02"}
    for run in runs.values():
        assert run["steps"] == run["steps_planned"] == 3 and run["stopped_by"] is None
        assert run["seconds_per_step"] == pytest.approx(run["train_loop_s"] / 3)
        assert run["precision"]["name"] in ("fp32", "fp32+channels_last", "bf16", "bf16+channels_last")
        assert run["precision"]["reason"] and run["settings"]["steps"] == 3
        assert run["precision"]["amp"] == run["settings"]["amp"] == results["protocol"]["amp"]
        assert run["precision"]["channels_last"] == run["settings"]["channels_last"]
    assert runs["frontal02 -> multipose"]["settings"]["train_split"] == "train"
    assert runs["multipose -> frontal02"]["settings"]["train_split"] == "multipose-train"

    # Per yaw: every pose once, its images counted once; the split's score is the sum of the poses'.
    gap = runs["frontal02 -> multipose"]["metrics"]["multipose-train"]
    assert set(gap["by_yaw"]) == {str(int(yaw)) for yaw in YAWS}
    assert all(report["num_images"] == 2 for report in gap["by_yaw"].values())
    summed = np.sum([report["confusion_matrix"] for report in gap["by_yaw"].values()], axis=0)
    assert gap["confusion_matrix"] == summed.tolist() and gap["num_images"] == 6
    model, schema, _ = load_model(Path(runs["frontal02 -> multipose"]["run_dir"]) / "last.pt")
    whole = evaluate(model, Fasseg(tiny_fasseg, "multipose-train", EvalTransform(32)), schema, batch_size=8)
    assert whole["confusion_matrix"] == gap["confusion_matrix"]
    assert whole["mean_f1"] == pytest.approx(gap["mean_f1"])
    assert results["summary"]["multipose -> frontal02"]["test"]["mean_f1"]["n"] == 1

    # The same command again finds both runs in the file and trains nothing.
    folders = sorted(runs_dir.rglob("last.pt"))
    assert cli_main(argv) == 0
    assert "already in" in capsys.readouterr().err
    assert sorted(runs_dir.rglob("last.pt")) == folders
    again = json.loads(out.read_text())
    assert len(again["runs"]) == 2 and len(again["history"]) == 2
    assert again["wall_time_s"] == pytest.approx(sum(entry["wall_time_s"] for entry in again["history"]))
    assert again["history"][0]["wall_time_s"] == pytest.approx(results["wall_time_s"])
    assert again["precision"]["reason"].startswith("as the results file's first run")

    # A file written before experiments fixed their precision holds "auto" in its runs' settings: still found.
    for run in again["runs"]:
        run["settings"].update(amp="auto", channels_last="auto")
    out.write_text(json.dumps(again))
    capsys.readouterr()
    assert cli_main(argv) == 0
    assert capsys.readouterr().err.count("already in") == 2
    assert sorted(runs_dir.rglob("last.pt")) == folders
    assert all(run["settings"]["amp"] == results["protocol"]["amp"] for run in json.loads(out.read_text())["runs"])


def test_a_time_cap_reaches_every_run_and_the_command(tiny_fasseg: Path, tmp_path: Path) -> None:
    """The cap itself is the trainer's (tests/test_train.py); the experiment passes it to every run's settings."""
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["fasseg-main", "--time-cap-minutes", "0.5", "--data-root", str(tiny_fasseg)])
    assert "--time-cap-minutes 0.5" in command_line(args)
    with pytest.raises(ValueError, match="--time-cap-minutes"):
        run_experiment(parser.parse_args(["fasseg-main", "--time-cap-minutes", "0"]))
    overrides = {"time_cap_s": 30.0}
    settings = run_settings(EXPERIMENTS["fasseg-main"], Variant(), overrides, 0)
    assert settings["time_cap_s"] == 30.0 and preset_config("fasseg", **settings).time_cap_s == 30.0


@pytest.mark.slow
def test_a_partial_ablation_says_which_seeds_and_variants_are_done(tiny_fasseg: Path, tmp_path: Path) -> None:
    out = tmp_path / "fasseg_ablation.json"
    argv = ["experiment", "fasseg-ablation", "--set", "steps=2", *TINY, "--set", "num_val_images=1"]
    argv += ["--set", "train_split=train", "--data-root", str(tiny_fasseg), "--out", str(out)]
    chosen = ["--seeds", "0", "1", "--variants", "baseline", "full", "--jobs", "2"]
    before = resident_mib()
    assert cli_main([*argv, *chosen, "--runs-dir", str(tmp_path / "runs")]) == 0
    assert resident_mib() - before < 100, "four trainings, each in its own process, leave no memory behind here"
    results = json.loads(out.read_text())
    assert all(run["peak_rss_mib"] > 0 for run in results["runs"])
    assert results["cpu_time_s"] >= sum(run["cpu_s"] for run in results["runs"]) > 0, "the trainings' processes count"
    assert [(run["variant"], run["seed"]) for run in results["runs"]] == [
        ("baseline", 0), ("full", 0), ("baseline", 1), ("full", 1),
    ], "two trainings at a time, recorded in the planned order"  # fmt: skip
    curve = results["runs"][-1]["curve"]
    assert [point["step"] for point in curve] == [1, 2] and set(curve[0]["diagnostics"]) >= {"own_class", "grad_norm"}
    assert results["seeds_planned"] == [0, 1, 2, 3, 4] and results["seeds_requested"] == [0, 1]
    assert results["seeds_done"] == [] and not results["complete"], "five variants of each seed are still missing"
    assert results["variants_requested"] == ["baseline", "full"] and len(results["variants"]) == 7
    baseline = [run for run in results["runs"] if run["variant"] == "baseline"]
    assert [run["seed"] for run in baseline] == [0, 1]
    assert all(run["settings"]["use_graph"] is False and run["settings"]["use_edge"] is False for run in baseline)
    # The paired difference of full to the baseline over the two seeds, with its interval.
    difference = results["paired"]["full"]["test"]
    full = {run["seed"]: run["metrics"]["test"]["mean_f1"] for run in results["runs"] if run["variant"] == "full"}
    base = {run["seed"]: run["metrics"]["test"]["mean_f1"] for run in baseline}
    assert difference["seeds"] == [0, 1] and difference["n"] == 2 and difference["reference"] == "baseline"
    assert difference["mean"] == pytest.approx((full[0] - base[0] + full[1] - base[1]) / 2)
    assert difference["low"] <= difference["mean"] <= difference["high"]
    assert "baseline" not in results["paired"]
    assert progress(results) == (
        "partial: 4 trainings; seeds with every variant: none yet; variants with all 5 planned seeds: none yet"
    )
    assert progress(None) == progress({"runs": []}) == "not yet run"

    # The authors' experiment shares its reference, the full model, with the ablation: trained once, in one run
    # folder (its results file, in another folder, does not see the ablation's).
    authors = [word if word != "fasseg-ablation" else "fasseg-authors" for word in argv]
    authors[authors.index("--out") + 1] = str(tmp_path / "other" / "authors.json")
    assert cli_main([*authors, "--seeds", "0", "--variants", "full", "--runs-dir", str(tmp_path / "runs")]) == 0
    (shared,) = json.loads((tmp_path / "other" / "authors.json").read_text())["runs"]
    (trained,) = [run for run in results["runs"] if run["variant"] == "full" and run["seed"] == 0]
    assert shared["run_dir"] == trained["run_dir"]
    assert shared["metrics"]["test"]["mean_f1"] == trained["metrics"]["test"]["mean_f1"]
    log = [json.loads(line) for line in (Path(trained["run_dir"]) / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log if line["kind"] == "start"] == [0, 2], "no step trained again"

    # Top-K's top-4 is the ablation's full model (top_k = 4 by default): its record, in the results file beside
    # top-K's, is reused even without the run folder; top-2 is another training.
    topk = [word if word != "fasseg-ablation" else "fasseg-topk" for word in argv]
    topk[topk.index("--out") + 1] = str(tmp_path / "fasseg_topk.json")
    assert cli_main([*topk, "--seeds", "0", "--variants", "top-4", "--runs-dir", str(tmp_path / "empty")]) == 0
    (reused,) = json.loads((tmp_path / "fasseg_topk.json").read_text())["runs"]
    assert reused["shared_from"] == "fasseg_ablation.json: full seed 0" and not (tmp_path / "empty").exists()
    assert reused["metrics"] == trained["metrics"] and reused["settings"]["top_k"] == 4
    assert same_training(trained["settings"], reused["settings"])
    assert not same_training(trained["settings"], {**reused["settings"], "top_k": 2})


@pytest.mark.slow
def test_a_killed_experiment_continues_its_unfinished_training(tiny_fasseg: Path, tmp_path: Path) -> None:
    argv = ["experiment", "fasseg-main", "--seeds", "0", "--set", "steps=3", *TINY, "--set", "num_val_images=1"]
    argv += ["--set", "train_split=train", "--data-root", str(tiny_fasseg), "--out", str(tmp_path / "main.json")]
    argv += ["--set", "amp=none", "--set", "channels_last=false"]
    overrides = {**TINY_SETTINGS, "steps": 3, "num_val_images": 1, "train_split": "train"}
    overrides.update(amp="none", channels_last=False)
    settings = run_settings(EXPERIMENTS["fasseg-main"], Variant(), overrides, 0)
    folder = run_folder(tmp_path / "runs", "full", settings)
    # What a killed experiment leaves: the run folder with a checkpoint at step 1 of 3.
    train(preset_config("fasseg", **settings, data_root=str(tiny_fasseg), out=str(folder), stop_after=1))
    assert cli_main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 0
    (run,) = json.loads((tmp_path / "main.json").read_text())["runs"]
    assert run["run_dir"] == str(folder) and run["steps"] == 3
    starts = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in starts if line["kind"] == "start"] == [0, 1], "continued from step 1"

    # --fresh trains it again from scratch, in a new run folder, and replaces the file instead of adding to it.
    assert cli_main([*argv, "--runs-dir", str(tmp_path / "runs"), "--fresh"]) == 0
    results = json.loads((tmp_path / "main.json").read_text())
    starts = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in starts if line["kind"] == "start"] == [0] and len(results["history"]) == 1


def test_a_rerun_is_set_beside_the_first_training_variant_by_variant() -> None:
    def run(variant: str, seed: int, test: float, unseen: float | None = None, **extra: Any) -> dict:
        metrics = {"test": {"mean_f1": test}} | ({"test-unseen": {"mean_f1": unseen}} if unseen else {})
        return {"variant": variant, "seed": seed, "metrics": metrics, **extra}

    def results(runs: list[dict]) -> dict:
        variants = {"baseline": {}, "full": {}, "other": {}}
        return {"reference": "baseline", "variants": variants, "runs": runs, "paired": paired(runs, "baseline")}

    amd, intel = {"precision": {"device": "AMD EPYC"}}, {"precision": {"device": "Intel Xeon"}}
    first = results(
        [run("baseline", s, 0.80, **amd) for s in (0, 1)]
        + [run("full", 0, 0.78, **amd), run("full", 1, 0.77, **intel)]
    )
    again = results(
        [run("baseline", s, 0.81, 0.80, shared_from="first") for s in (0, 1)]
        + [run("full", 0, 0.785, 0.79), run("full", 1, 0.80, 0.78)]
    )
    lines = rerun_table(first, again).splitlines()
    assert lines[0].startswith("| variant | first trained on | first: minus baseline, test | again: minus baseline")
    assert lines[2] == "| baseline | AMD EPYC | reference | reference | reference | 2 | same runs |"
    first_full = interval_text(first["paired"]["full"]["test"])
    assert first_full.startswith("-2.5 [")
    assert lines[3].startswith(f"| full | AMD EPYC, Intel Xeon | {first_full} | -1.8 [") and "| -1.5 [" in lines[3]
    assert lines[3].endswith("| 2 | 3.0 |"), "seed 1 of full moved most: 77.0 -> 80.0"
    assert len(lines) == 4, "a variant with no run again has no row"


def test_a_keep_if_positive_rule_reads_the_mean_paired_difference() -> None:
    scores = {"plain": (0.80, 0.82), "new": (0.81, 0.826)}
    runs = [
        {"variant": variant, "seed": seed, "metrics": {"val": {"mean_f1": f1}}}
        for variant, values in scores.items()
        for seed, f1 in enumerate(values)
    ]
    results = {"reference": "plain", "paired": paired(runs, "plain")}
    assert rule_line(results, "new", "val") == (
        "new minus plain on val, mean over seeds [0, 1]: +0.8 points, so by the rule (kept when above zero) it is kept."
    )
    runs[3]["metrics"]["val"]["mean_f1"] = 0.80  # differences +1.0 and -2.0
    assert rule_line({**results, "paired": paired(runs, "plain")}, "new", "val").endswith("it is not kept.")
    assert rule_line(results, "new", "test") == "new: no paired run on test yet."


def test_a_keep_if_sure_rule_needs_the_interval_above_zero_and_no_loss_on_the_guard_split() -> None:
    scores = {  # seed by seed: (hands, photos)
        "plain": [(0.70, 0.90), (0.72, 0.91), (0.71, 0.92)],
        "new": [(0.75, 0.90), (0.76, 0.91), (0.76, 0.92)],
    }

    def results(new: list[tuple[float, float]]) -> dict:
        runs = [
            {"variant": variant, "seed": seed, "metrics": {"hands": {"mean_f1": h}, "photos": {"mean_f1": p}}}
            for variant, values in {**scores, "new": new}.items()
            for seed, (h, p) in enumerate(values)
        ]
        return {"reference": "plain", "paired": paired(runs, "plain")}

    line = sure_rule_line(results(scores["new"]), "new", "hands", "photos")
    assert line.startswith("new minus plain over seeds [0, 1, 2]: +4.7 [+3.2, +6.1] points on hands, +0.0 [")
    assert line.endswith("(kept when the first interval lies above zero and the second mean above -0.3) it is kept.")
    costly = [(h, p - 0.004) for h, p in scores["new"]]
    assert sure_rule_line(results(costly), "new", "hands", "photos").endswith("it is not kept."), "-0.4 on photos"
    unsure = [(0.75, 0.90), (0.70, 0.91), (0.76, 0.92)]  # +5, -2, +5: mean above zero, interval across it
    assert sure_rule_line(results(unsure), "new", "hands", "photos").endswith("it is not kept.")
    assert sure_rule_line(results(unsure), "new", "test", "photos") == "new: no paired runs on test and photos yet."


def test_a_run_scored_on_more_evaluations_is_shared_with_those_asked_for() -> None:
    settings = run_settings(EXPERIMENTS["fasseg-ablation"], Variant(), {}, 0)
    metrics = {"test": {"mean_f1": 0.9}, "test-unseen": {"mean_f1": 0.8}, "test (flip)": {"mean_f1": 0.7}}
    elsewhere = [("a.json", {"variant": "full", "seed": 0, "settings": settings, "metrics": metrics})]
    record = shared_record(elsewhere, Variant(), settings, flip=False)
    assert record is not None and record["shared_from"] == "a.json: full seed 0"
    assert record["metrics"] == {"test": {"mean_f1": 0.9}, "test-unseen": {"mean_f1": 0.8}}
    assert shared_record(elsewhere, Variant(), settings, flip=True) is None, "test-unseen (flip) was not scored"
    assert shared_record(elsewhere, Variant(), {**settings, "seed": 1}, flip=False) is None


def test_a_keep_if_positive_rule_on_flip_pairs_each_run_with_itself() -> None:
    runs = [
        {"variant": "new", "seed": seed, "metrics": {"val": {"mean_f1": plain}, "val (flip)": {"mean_f1": flipped}}}
        for seed, (plain, flipped) in enumerate(((0.80, 0.82), (0.84, 0.85), (0.70, 0.70)))
    ]
    runs.append({"variant": "plain", "seed": 0, "metrics": {"val": {"mean_f1": 0.0}, "val (flip)": {"mean_f1": 1.0}}})
    line = flip_rule_line({"runs": runs}, "new", "val")
    assert line.startswith("new with flip minus without on val (+1.0 [-1.5, +3.5]), mean over seeds [0, 1, 2]: +1.0")
    assert line.endswith("it is kept.")
    runs[2]["metrics"]["val (flip)"]["mean_f1"] = 0.66  # differences +2, +1, -4
    assert flip_rule_line({"runs": runs}, "new", "val").endswith("it is not kept.")
    assert flip_rule_line({"runs": runs}, "new", "test") == "new: no run scored with and without flip on test yet."


def test_paired_differences_and_their_interval() -> None:
    def run(variant: str, seed: int, f1: float) -> dict:
        report = {"mean_f1": f1, "miou": f1, "pixel_accuracy": f1, "mean_accuracy": f1, "f1": {}}
        return {"variant": variant, "seed": seed, "metrics": {"test": report}}

    runs = [run("baseline", s, f) for s, f in enumerate((0.80, 0.82, 0.81))]
    runs += [run("full", s, f) for s, f in enumerate((0.83, 0.84, 0.85))] + [run("other", 0, 0.7)]
    result = paired(runs, "baseline")
    full = result["full"]["test"]
    assert full["seeds"] == [0, 1, 2] and full["mean"] == pytest.approx(0.03)
    # differences 0.03, 0.02, 0.04: sd 0.01, t(0.975, 2) = 4.303
    assert full["half_width"] == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    assert result["other"]["test"]["n"] == 1 and result["other"]["test"]["low"] is None

    # The table of the book's chapters: one row per variant, the reference and the pending ones marked.
    summary = summarise(runs)
    results = {"reference": "baseline", "variants": {"baseline": {}, "full": {}, "other": {}, "top-8": {}}}
    table = paired_table({**results, "summary": summary, "paired": result}).splitlines()
    half = 100 * full["half_width"]
    assert table[2] == "| baseline | 3 | 81.0 ± 1.0 | reference |  | – | – |", "the paper has no baseline with L_BA"
    assert table[3] == f"| full | 3 | 84.0 ± 1.0 | +3.0 [{3 - half:+.1f}, {3 + half:+.1f}] | helps | 92.3 | – |"
    assert table[4] == "| other | 1 | 70.0 | -10.0 | no interval | – | – |"
    assert table[5] == "| top-8 | 0 | not yet run | | | 91.1 | – |" and len(table) == 6
    # Against another reference, with the paper's own difference to it.
    against = paired_table({**results, "summary": summary, "runs": runs}, reference="other").splitlines()
    assert against[0].startswith("| variant | seeds | mean F1 (%) | minus other, 95 % interval |")
    assert against[3] == "| full | 3 | 84.0 ± 1.0 | +13.0 | no interval | 92.3 | – |"
    paper = {"full": 92.3, "other": 90.0}
    table = paired_table({**results, "summary": summary, "runs": runs}, paper=paper, reference="other")
    assert table.splitlines()[3].endswith("| 92.3 | +2.3 |")
    parts = [("graph", "full", "baseline"), ("other part", "other", "full"), ("missing", "top-8", "top-4")]
    assert parts_table({"runs": runs}, parts).splitlines()[2:] == [
        f"| graph | +3.0 [{3 - half:+.1f}, {3 + half:+.1f}] | 3 | helps | – |",
        "| other part | -13.0 | 1 | no interval | – |",
        "| missing | not yet run | 0 | | -1.2 |",
    ]
    # Class by class: F1 of "eyes" and "nose" per run, the baseline's eyes absent (None) on seed 2.
    eyes_f1, nose_f1 = (0.5, 0.6, None, 0.4, 0.5, 0.6, 0.1), (0.8, 0.8, 0.8, 0.85, 0.9, 0.8, 0.8)
    for run, eyes, nose in zip(runs, eyes_f1, nose_f1, strict=True):
        run["metrics"]["test"]["f1"] = {"eyes": eyes, "nose": nose}
    classes = class_table({**results, "runs": runs}).splitlines()
    assert classes[:2] == ["| minus baseline | eyes | nose |", "|---|---|---|"]
    # full - baseline: eyes -0.1, -0.1 on seeds 0, 1 (sd 0: interval of width 0), nose +0.05, +0.1, 0.
    nose = paired(runs, "baseline", lambda report: report["f1"]["nose"])["full"]["test"]
    assert classes[2] == f"| full | **-10.0 ± 0.0** | +5.0 ± {100 * nose['half_width']:.1f} |"
    assert classes[3:] == ["| other | -40.0 | +0.0 |", "| top-8 | – | – |"]
    state = {"protocol": {}, "runs": runs, "seeds_planned": [0, 1, 2], "seeds_done": [0], "complete": False}
    assert progress({**state, "variants": {"baseline": {}, "full": {}, "other": {}}}) == (
        "partial: 7 trainings; seeds with every variant: [0]; variants with all 3 planned seeds: baseline, full"
    )
    assert progress({**state, "seeds_done": [0, 1, 2], "complete": True}) == (
        "complete: 7 trainings; seeds with every variant: [0, 1, 2]"
    )


def test_bad_arguments_are_reported(tiny_fasseg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path / "x.json"), "--runs-dir", str(tmp_path / "runs")]
    assert cli_main(["experiment", "fasseg-topk", "--variants", "top-3", "--data-root", str(tiny_fasseg), *out]) == 1
    assert "unknown ['top-3']" in capsys.readouterr().err
    assert cli_main(["experiment", "fasseg-main", "--data-root", str(tmp_path / "missing"), *out]) == 1
    assert "FASSEG folder not found" in capsys.readouterr().err
    assert cli_main(["experiment", "fasseg-main", "--set", "size=-1", "--data-root", str(tiny_fasseg), *out]) == 1
    assert "size" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_variants_of_a_seed_start_from_the_same_weights_and_see_the_same_batches(tiny_fasseg: Path) -> None:
    def start(seed: int, **variant: Any) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """A trainer's initial weights and first three batches, drawn as its run would draw them."""
        settings = run_settings(EXPERIMENTS["fasseg-ablation"], Variant(variant), TINY_SETTINGS, seed)
        trainer = Trainer(preset_config("fasseg", **settings, data_root=str(tiny_fasseg), out=None))
        batches = [batch for _, batch in zip(range(3), trainer.train_loader, strict=False)]
        return trainer.model.state_dict(), batches

    baseline, baseline_batches = start(0, use_graph=False, use_edge=False)
    full, full_batches = start(0)
    other, other_batches = start(1)
    assert set(baseline) < set(full)
    assert all(torch.equal(value, full[key]) for key, value in baseline.items())
    assert not all(torch.equal(value, other[key]) for key, value in baseline.items())
    for a, b in zip(baseline_batches, full_batches, strict=True):
        assert a["name"] == b["name"] and torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(baseline_batches[0]["image"], other_batches[0]["image"]), "another seed, other batches"


def test_the_paper_baseline_trains_on_cross_entropy_alone(tiny_fasseg: Path) -> None:
    """Table I(a) row 1: ResNet + pyramid pooling with L_final only; our "baseline" adds L_BA."""
    terms = {}
    for name in ("paper-baseline", "baseline"):
        settings = run_settings(EXPERIMENTS["fasseg-ablation"], EXPERIMENTS["fasseg-ablation"].variants[name], {}, 0)
        config = preset_config("fasseg", **{**settings, **TINY_SETTINGS}, data_root=str(tiny_fasseg))
        trainer = Trainer(dataclasses.replace(config, out=str(tiny_fasseg.parent / "runs" / name)))
        batch = next(iter(trainer.train_loader))
        terms[name] = set(trainer.criterion(trainer.model(batch["image"]), batch)[1])
    assert terms == {"paper-baseline": {"final"}, "baseline": {"boundary", "final"}}


def test_a_results_file_is_read_by_its_experiment_name(tmp_path: Path) -> None:
    assert load_results(tmp_path, "fasseg-topk") is None, "no file"
    path = tmp_path / "fasseg_topk.json"
    path.write_text(json.dumps({"runs": []}))
    assert load_results(tmp_path, "fasseg-topk") is None, "a file of an older protocol"
    path.write_text(json.dumps({"protocol": {"steps": 300}, "runs": []}))
    assert load_results(tmp_path, "fasseg-topk") == {"protocol": {"steps": 300}, "runs": []}


def test_verdict_reads_the_interval() -> None:
    assert verdict(0.001, 0.02) == "helps" and verdict(-0.02, -0.001) == "hurts"
    assert verdict(-0.01, 0.01) == "cannot be told apart" and verdict(None, None) == "no interval"


def test_an_experiment_trains_every_run_in_one_precision() -> None:
    experiment = EXPERIMENTS["fasseg-ablation"]
    tiny = {key: value for key, value in TINY_SETTINGS.items() if key != "train_split"}
    fixed = experiment_precision(experiment, {**tiny, "amp": "none", "channels_last": False}, [])
    assert (fixed["amp"], fixed["channels_last"], fixed["reason"]) == ("none", False, "set by the command")
    probed = experiment_precision(experiment, tiny, [])
    assert probed["amp"] in ("none", "bf16") and probed["channels_last"] in (True, False)
    assert set(probed["timings_s"]) >= {"fp32", "fp32+channels_last"}, "the full model probed on this machine"
    runs = [{"variant": "full", "seed": 3, "settings": {"amp": "bf16", "channels_last": True}}]
    pinned = experiment_precision(experiment, tiny, runs)
    assert (pinned["amp"], pinned["channels_last"]) == ("bf16", True) and "full seed 3" in pinned["reason"]
    half = experiment_precision(experiment, {**tiny, "channels_last": False}, runs)
    assert (half["amp"], half["channels_last"]) == ("bf16", False), "what the command sets wins over the file"
    old = {"settings": {"amp": "auto", "channels_last": "auto", "seed": 1}, "precision": {"amp": "none",
           "channels_last": True}}  # fmt: skip
    assert concrete_settings(old) == {"amp": "none", "channels_last": True, "seed": 1}


def test_evaluations_added_later_are_scored_from_the_run_folder_and_named_when_it_is_gone(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tiny_model import tiny_checkpoint

    from agrnet.experiments.runner import score_missing
    from agrnet.experiments.spec import Evaluation, Variant

    root = shared_data / "fasseg"
    tiny_checkpoint(tmp_path / "run" / "last.pt", FASSEG_SCHEMA)
    variant = Variant(evaluations=(Evaluation("test"), Evaluation("test-unseen")))
    recorded = {"test": {"mean_f1": 0.5}}
    run = {"variant": "full", "seed": 0, "settings": {"size": 64}, "metrics": dict(recorded)}
    assert score_missing(run, variant, tmp_path / "run", root, flip=False) == ["test-unseen"]
    assert run["metrics"]["test"] == recorded["test"], "what was recorded stays"
    model, _, _ = load_model(tmp_path / "run" / "last.pt", map_location="cpu")
    expected = evaluate(model, Fasseg(root, "test-unseen", EvalTransform(64)), FASSEG_SCHEMA, "cpu", batch_size=8)
    assert run["metrics"]["test-unseen"]["mean_f1"] == pytest.approx(expected["mean_f1"])
    assert score_missing(run, variant, tmp_path / "run", root, flip=False) == [], "nothing left to score"
    gone = {"variant": "full", "seed": 1, "settings": {"size": 64}, "metrics": dict(recorded)}
    assert score_missing(gone, variant, tmp_path / "gone", root, flip=False) == [] and gone["metrics"] == recorded
    assert "full seed 1: lacks ['test-unseen']" in capsys.readouterr().err


def test_a_photo_evaluation_can_show_each_photo_with_less_detail_or_a_hand_over_the_face(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiny_model import tiny_checkpoint

    from agrnet.data.transforms import LowResolution, RaisedHand
    from agrnet.experiments import worker
    from agrnet.experiments.spec import Evaluation
    from agrnet.faces import FaceDetector, score_photos
    from agrnet.predict import Predictor

    shrunk = Evaluation("val", photos=True, shrink=4)
    assert (shrunk.key, shrunk.flip_key) == ("val (photos, 1/4 resolution)", "val (photos, 1/4 resolution) (flip)")
    assert Evaluation("val", photos=True).key == "val (photos)"
    for bad in ({"shrink": 0, "photos": True}, {"shrink": 2}):
        with pytest.raises(ValueError, match="shrink: expected 1, or an integer > 1 with photos"):
            Evaluation("val", **bad)
    root = shared_data / "fasseg"
    tiny_checkpoint(tmp_path / "last.pt", FASSEG_SCHEMA)
    model, _, _ = load_model(tmp_path / "last.pt", map_location="cpu")

    def first_three(*args: Any, **kwargs: Any) -> Fasseg:  # the photo pipeline on 3 faces, not the split's 30
        dataset = Fasseg(*args[1:], **kwargs)
        dataset.items = dataset.items[:3]
        return dataset

    monkeypatch.setattr(worker, "build_dataset", first_three)
    report = worker.score(model, root, shrunk, 64)
    small = first_three("fasseg", root, "val", transform=LowResolution(4))
    expected = score_photos(Predictor(model, FASSEG_SCHEMA, device="cpu", size=64), small, FaceDetector())
    assert report["confusion_matrix"] == expected["confusion_matrix"] and report["num_images"] == 3
    plain = worker.score(model, root, Evaluation("val", photos=True), 64)
    assert plain["confusion_matrix"] != report["confusion_matrix"], "the shrunk photos are other photos"
    raised = Evaluation("val", photos=True, hands=True)
    assert raised.key == "val (photos, hands)"
    for bad in ({"hands": True}, {"hands": True, "photos": True, "shrink": 2}):
        with pytest.raises(ValueError, match="hands: scored through the photo pipeline"):
            Evaluation("val", **bad)
    occluded = worker.score(model, root, raised, 64)
    labels = first_three("fasseg", root, "val", transform=RaisedHand(FASSEG_SCHEMA))
    expected = score_photos(Predictor(model, FASSEG_SCHEMA, device="cpu", size=64), labels, FaceDetector())
    assert occluded["confusion_matrix"] == expected["confusion_matrix"], "the same hands every time"
    assert sum(map(sum, occluded["confusion_matrix"])) == sum(map(sum, plain["confusion_matrix"]))
    assert occluded["confusion_matrix"] != plain["confusion_matrix"], "hands over the faces"


def test_each_variants_seeds_are_scored_as_one_ensemble_and_ruled_on_against_its_members(
    shared_data: Path, tmp_path: Path
) -> None:
    from agrnet.checkpoint import model_state, save_checkpoint
    from agrnet.experiments import ensemble_line, ensemble_rule_line
    from agrnet.experiments.runner import score_ensembles
    from agrnet.experiments.spec import Evaluation
    from agrnet.model import AGRNet, Ensemble

    root = shared_data / "fasseg"
    runs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = AGRNet(FASSEG_SCHEMA.num_classes, backbone="resnet18", channels=16, top_k=2)
        save_checkpoint(tmp_path / f"seed{seed}" / "last.pt", model_state(model, FASSEG_SCHEMA))
        metrics = {"test-unseen": {"mean_f1": 0.3 + 0.1 * seed}}
        folder = str(tmp_path / f"seed{seed}")
        runs.append({"variant": "full", "seed": seed, "settings": {"size": 64}, "run_dir": folder, "metrics": metrics})
    runs.append({"variant": "alone", "seed": 0, "settings": {"size": 64}, "run_dir": "-", "metrics": {}})
    variants = {"full": Variant(evaluations=(Evaluation("test-unseen"),)), "alone": Variant()}
    ensembles: dict[str, Any] = {}
    score_ensembles(ensembles, runs, variants, root, flip=False)
    assert list(ensembles) == ["full"], "one seed is no ensemble"
    members = [load_model(tmp_path / f"seed{seed}" / "last.pt")[0] for seed in (0, 1)]
    expected = evaluate(Ensemble(members), Fasseg(root, "test-unseen", EvalTransform(64)), FASSEG_SCHEMA, "cpu")
    report = ensembles["full"]["metrics"]["test-unseen"]
    assert report["confusion_matrix"] == expected["confusion_matrix"] and ensembles["full"]["seeds"] == [0, 1]
    scored = {**ensembles["full"], "metrics": {"test-unseen": {"mean_f1": 0.45}}}
    results = {"runs": runs, "ensembles": {"full": scored}}
    line = ensemble_rule_line(results, "full", "test-unseen")
    assert line.startswith(ensemble_line(results, "full", "test-unseen") + ", so by the rule")
    assert line.startswith("full, ensemble of seeds [0, 1] on test-unseen: 45.0 (members: seed 0 30.0, seed 1 40.0)")
    assert line.endswith("+5.0 points on the best member, so by the rule (kept when above every member) it is kept.")
    results["ensembles"]["full"]["metrics"]["test-unseen"]["mean_f1"] = 0.35
    assert ensemble_rule_line(results, "full", "test-unseen").endswith("it is not kept.")
    assert ensemble_rule_line(results, "full", "val") == "full: no ensemble scored on val yet."

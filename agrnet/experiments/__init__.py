"""Experiments on real photographs (FASSEG) on a fixed step protocol: the main result, the ablation of Table
I(a)(b), the vertex count of Table I(c), the authors' code's departures from the paper, the domain gap across
head poses of Table IV, the diagnosis of an earlier protocol's instability (a constant learning rate, and the same
short length with the decaying schedule), the graph against the paper's own baseline closer to the paper (from a
pretrained backbone, on the long protocol), and the appearance augmentation for faces from elsewhere
(``fasseg-photo``: fitted on ``fit``, chosen on ``val``).

``agrnet experiment NAME`` trains each variant and seed of experiment ``NAME`` with ``agrnet.training.train`` (preset
"fasseg", ``PROTOCOL``, the experiment's and the variant's settings on top), scores the last checkpoint with
``agrnet.evaluate.evaluate`` on FASSEG ``test`` and ``test-unseen`` (its faces that no train split holds) and
writes one JSON file: the command, git commit, versions, machine, load average, wall and CPU time, seeds planned
and done, every run's steps, seconds per step, chosen precision and metrics, their mean and standard deviation
over seeds, and for experiments with a reference variant the paired difference of every variant to it with a
95 % interval (``agrnet.stats``). The file is rewritten after each run, so an interrupted experiment keeps what it
finished; running the same command again skips the runs the file already holds with the same configuration.

Paired design: variants of one seed start from the same initial weights in every part they share (``AGRNet``
seeds each part on its own) and see the same batches in the same order (the sampler and the augmentation are
seeded by the run's seed after the model is built) in one precision (``experiment_precision``: probed once,
then kept by every later piece, whichever machine runs it), so a difference between two variants of a seed is
the effect of the parts that differ, not of the draw.
"""

from agrnet.experiments.results import load_results, paired, progress, seed_reports, summarise
from agrnet.experiments.runner import (
    concrete_settings,
    experiment_precision,
    run_experiment,
    run_folder,
    run_settings,
    same_training,
)
from agrnet.experiments.spec import (
    CONSTANT_LR_PROTOCOL,
    DEFAULT_ROOT,
    DEFAULT_RUNS_DIR,
    EXPERIMENTS,
    PROTOCOL,
    SHORT_PROTOCOL,
    ZOOM_OUT,
    Evaluation,
    Experiment,
    Variant,
)
from agrnet.experiments.tables import (
    PAPER_MEAN_F1,
    class_table,
    curve_table,
    ensemble_line,
    ensemble_rule_line,
    experiment_section,
    flip_rule_line,
    interval_text,
    paired_table,
    parts_table,
    percent,
    precision_table,
    protocols_table,
    rerun_table,
    rule_line,
    runs_table,
    split_section,
    sure_rule_line,
    verdict_lines,
    yaw_table,
)
from agrnet.experiments.worker import score

__all__ = [
    "CONSTANT_LR_PROTOCOL",
    "DEFAULT_ROOT",
    "DEFAULT_RUNS_DIR",
    "EXPERIMENTS",
    "PAPER_MEAN_F1",
    "PROTOCOL",
    "SHORT_PROTOCOL",
    "ZOOM_OUT",
    "Evaluation",
    "Experiment",
    "Variant",
    "class_table",
    "concrete_settings",
    "curve_table",
    "experiment_precision",
    "experiment_section",
    "interval_text",
    "load_results",
    "paired",
    "paired_table",
    "parts_table",
    "percent",
    "precision_table",
    "progress",
    "protocols_table",
    "run_experiment",
    "run_folder",
    "run_settings",
    "rerun_table",
    "ensemble_line",
    "ensemble_rule_line",
    "flip_rule_line",
    "rule_line",
    "runs_table",
    "same_training",
    "score",
    "seed_reports",
    "split_section",
    "summarise",
    "sure_rule_line",
    "verdict_lines",
    "yaw_table",
]

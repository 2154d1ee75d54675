"""Training AGRNet (Algorithm 1): the training loop, DDP, checkpoints and logs.

``train(config)`` runs one training of a ``agrnet.config.TrainConfig`` and returns its run directory, which holds
``config.json`` (the configuration, and the ``precision`` the run chose with the probe's timings), ``log.jsonl``
(one line per step and one per validation), ``last.pt`` and ``best.pt``. The ``agrnet train`` command
(``agrnet.cli.train``) builds the configuration from a preset, ``--set key=value`` overrides and flags.

The modules, in the order a run uses them:

- ``build``: the parts of a run from its configuration (datasets, model, precision, loss, optimizer, loader);
- ``resume``: the checkpoint a run continues, the checks that it fits, and the restore of its state;
- ``trainer``: ``Trainer`` (build, step, loop) and ``train``;
- ``monitor``: the steps' numbers brought to the host every ``log_every`` steps, and the NaN check there;
- ``runlog``: ``log.jsonl``, written by the loop and read back by ``read_log``.
"""

from agrnet.config import PRESETS, TrainConfig, preset_config
from agrnet.training.build import choose_run_precision, model_config
from agrnet.training.monitor import NonFiniteLossError
from agrnet.training.runlog import read_log
from agrnet.training.trainer import Trainer, TrainingInterrupted, train

__all__ = [
    "PRESETS",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "choose_run_precision",
    "model_config",
    "preset_config",
    "read_log",
    "train",
]

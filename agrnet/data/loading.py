"""Batches whose data errors read as one line: ``CheckedLoader``, a DataLoader for training and scoring.

torch's DataLoader re-raises an error of a worker process as "Caught ValueError in DataLoader worker process 0.
Original Traceback ...", the worker's traceback inside the message, the file it names at the very end.
``CheckedLoader`` catches a sample's error where it happens (in the worker, or in this process with no workers) and
sends it on as data; the main process raises it again with its own type and message, which name the file. With
``skip_bad`` a sample whose files are bad (``BAD_DATA``: a missing file, an undecodable one, an image and label of
different sizes, ids outside the schema) is left out of its batch and its message kept in ``skipped``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch.utils.data import DataLoader, Dataset
from torch.utils.data import default_collate as torch_default_collate

from agrnet.files import BadFileError

BAD_DATA: tuple[type[BaseException], ...] = (ValueError, OSError, BadFileError)
"""The errors that mean "this sample's files are bad" (the readers of ``agrnet.data`` raise only these)."""


@dataclass(frozen=True)
class LoadFailure:
    """A sample (or a batch: ``index`` None) whose loading raised ``kind(message)``; picklable across processes."""

    index: int | None
    kind: type[BaseException]
    message: str

    @classmethod
    def of(cls, index: int | None, error: Exception) -> LoadFailure:
        """The failure of ``error`` (its type when that can travel between processes, else RuntimeError)."""
        kind: type[BaseException] = type(error)
        try:
            pickle.dumps(kind)
        except (pickle.PicklingError, AttributeError, TypeError):
            kind = RuntimeError
        return cls(index, kind, str(error) if kind is type(error) else f"{type(error).__name__}: {error}")

    def error(self) -> BaseException:
        """The error again, with the original type and message where the type takes a message."""
        try:
            return self.kind(self.message)
        except Exception:  # a type whose constructor wants more than a message
            return RuntimeError(f"{self.kind.__name__}: {self.message}")


class _Checked(Dataset):
    """``dataset`` whose samples are either the sample or the ``LoadFailure`` of its error."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except Exception as error:
            return LoadFailure.of(index, error)


class _Batch(NamedTuple):
    """What a worker sends: the collated good samples (None when there are none), the skipped failures, and the
    failure to raise (None when there is none). A NamedTuple, so that ``pin_memory`` pins ``data``."""

    data: Any
    skipped: list[LoadFailure]
    error: LoadFailure | None


class _Collate:
    def __init__(self, collate: Callable[[Sequence[Any]], Any], skip_bad: bool) -> None:
        self.collate = collate
        self.skip_bad = skip_bad

    def __call__(self, samples: Sequence[Any]) -> _Batch:
        failures = [sample for sample in samples if isinstance(sample, LoadFailure)]
        fatal = [f for f in failures if not (self.skip_bad and issubclass(f.kind, BAD_DATA))]
        if fatal:
            return _Batch(None, [], fatal[0])
        good = [sample for sample in samples if not isinstance(sample, LoadFailure)]
        try:
            return _Batch(self.collate(good) if good else None, failures, None)
        except Exception as error:
            return _Batch(None, [], LoadFailure.of(None, error))


class CheckedLoader(DataLoader):
    """A ``DataLoader`` whose sample errors reach the loop as the original error (type and message), also from
    worker processes; with ``skip_bad``, samples failing with a ``BAD_DATA`` error are left out of their batches
    (a batch of only such samples is not yielded) and their messages appended to ``skipped``. Other arguments are
    the DataLoader's.

    With no workers and no ``skip_bad`` it is a plain DataLoader: errors propagate as they are, traceback included.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        collate_fn: Callable[[Sequence[Any]], Any] | None = None,
        num_workers: int = 0,
        skip_bad: bool = False,
        **kwargs: Any,
    ) -> None:
        self.checked = skip_bad or num_workers > 0
        if self.checked:
            dataset = _Checked(dataset)
            collate_fn = _Collate(collate_fn or torch_default_collate, skip_bad)
        super().__init__(dataset, collate_fn=collate_fn, num_workers=num_workers, **kwargs)
        self.skipped: list[str] = []

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if not self.checked:
            yield from super().__iter__()
            return
        for batch in super().__iter__():
            if batch.error is not None:
                raise batch.error.error()
            self.skipped += [failure.message for failure in batch.skipped]
            if batch.data is not None:
                yield batch.data


__all__ = ["BAD_DATA", "CheckedLoader", "LoadFailure"]

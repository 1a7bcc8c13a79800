"""`workdir/metrics.jsonl`: one JSON object per logged step, each step once.

The file is appended to. When a run resumes or rolls back to step s, the
records of steps after s are dropped (they belong to an abandoned
trajectory), and nothing else: a damaged line (a write cut short by a kill,
a stray edit) is skipped with a warning by every reader and kept, verbatim,
in `metrics.jsonl.damaged` when the file is rewritten. `read_records` is the
one reader (the trainer and `plots` use it).

`IntervalMeans` averages the training scalars over each logging interval
(stylegan2-ada's `training_stats` does the same per reporting tick): the
value of the one step that happens to be logged is noise.
"""

import json
import math
import os
from typing import Mapping

from absl import logging
from clu import metrics as clu_metrics
import jax
import numpy as np

METRICS_FILE = 'metrics.jsonl'
DAMAGED_SUFFIX = '.damaged'
# One line per divergence of a run ({'step', 'why'}), kept over resumes.
DIVERGENCE_FILE = 'divergences.jsonl'


def _clean(value):
  value = float(value)
  return value if math.isfinite(value) else str(value)


def _parse(path: str) -> tuple[list[dict], list[tuple[int, str]]]:
  """(records, damaged (line number, text)) of a metrics file."""
  records, damaged = [], []
  if not os.path.exists(path):
    return records, damaged
  with open(path, errors='replace') as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        record = None
      if isinstance(record, dict) and isinstance(record.get('step'), int):
        records.append(record)
      else:
        damaged.append((number, line))
  return records, damaged


def read_records(path: str) -> list[dict]:
  """Every valid record of a metrics file; damaged lines skipped, warned.

  Args:
    path: a `metrics.jsonl` file (missing = no records).

  Returns:
    The records ({'step': int, name: value, ...}) in file order.
  """
  records, damaged = _parse(path)
  if damaged:
    numbers = ', '.join(str(n) for n, _ in damaged[:5])
    logging.warning(
        '%s: skipped %d damaged line(s) (line %s%s).',
        path,
        len(damaged),
        numbers,
        ', ...' if len(damaged) > 5 else '',
    )
  return records


def record_divergence(workdir: str, step: int, why: str) -> None:
  """Appends a divergence (the step it was found at, why) to the run's list."""
  with open(os.path.join(workdir, DIVERGENCE_FILE), 'a') as f:
    f.write(json.dumps({'step': int(step), 'why': why}) + '\n')


def read_divergences(workdir: str) -> list[dict]:
  """The divergences of the run in `workdir`, oldest first."""
  return read_records(os.path.join(workdir, DIVERGENCE_FILE))


class MetricsLog:
  """Appends metric records to `workdir/metrics.jsonl`."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, METRICS_FILE)

  def read(self) -> list[dict]:
    """All valid records in the file."""
    return read_records(self.path)

  def truncate(self, last_step: int) -> None:
    """Drops the records of steps after `last_step` (atomically).

    Every other record stays; damaged lines move to `metrics.jsonl.damaged`.
    The file is not touched when there is nothing to drop.
    """
    records, damaged = _parse(self.path)
    kept = [r for r in records if r['step'] <= last_step]
    if len(kept) == len(records) and not damaged:
      return
    if damaged:
      with open(self.path + DAMAGED_SUFFIX, 'a') as f:
        f.writelines(
            line if line.endswith('\n') else line + '\n' for _, line in damaged
        )
      logging.warning(
          '%s: %d damaged line(s) moved to %s.',
          self.path,
          len(damaged),
          self.path + DAMAGED_SUFFIX,
      )
    tmp = self.path + '.tmp'
    try:
      with open(tmp, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in kept)
      os.replace(tmp, self.path)
    finally:
      if os.path.exists(tmp):  # A failed write leaves no partial file.
        os.remove(tmp)

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    record = {'step': int(step), **{k: _clean(v) for k, v in metrics.items()}}
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
      f.flush()


def _merge(
    totals: dict[str, clu_metrics.Average], values: Mapping[str, jax.Array]
) -> dict[str, clu_metrics.Average]:
  return {
      k: totals.get(k, clu_metrics.Average.empty()).merge(
          clu_metrics.Average.from_model_output(v)
      )
      for k, v in values.items()
  }


class IntervalMeans:
  """Means of the step metrics over the steps since the last `result()`.

  `update` runs on the device without waiting for it (one jitted merge of
  clu `Average`s per step), so the host still syncs only at logged steps.
  A metric missing from some steps is averaged over the steps that had it.
  """

  def __init__(self, exclude: tuple[str, ...] = ('finite',)):
    """Args: names of step metrics that are not averaged (flags)."""
    self._exclude = exclude
    self._totals: dict[str, clu_metrics.Average] = {}
    self._merge = jax.jit(_merge)

  def update(self, step_metrics: Mapping[str, jax.Array]) -> None:
    """Adds one step's scalar metrics."""
    values = {k: v for k, v in step_metrics.items() if k not in self._exclude}
    self._totals = {**self._totals, **self._merge(self._totals, values)}

  def reset(self) -> None:
    """Forgets the steps seen so far (after a rollback)."""
    self._totals = {}

  def result(self) -> dict[str, float]:
    """Each metric's mean over the interval (host floats); then resets."""
    # The replica on this process (global arrays in multi-process runs).
    local = lambda x: np.asarray(x.addressable_data(0))
    means = {
        k: float(local(v.total) / local(v.count))
        for k, v in self._totals.items()
    }
    self.reset()
    return means

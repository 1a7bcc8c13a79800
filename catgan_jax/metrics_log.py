"""`workdir/metrics.jsonl`: one JSON object per logged step, each step once.

When a run resumes or rolls back to step s, lines after s are dropped first,
so the file never holds a step twice or a step of an abandoned trajectory.
"""

import json
import math
import os
from typing import Mapping

METRICS_FILE = 'metrics.jsonl'


def _clean(value):
  value = float(value)
  return value if math.isfinite(value) else str(value)


class MetricsLog:
  """Appends metric records to `workdir/metrics.jsonl`."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, METRICS_FILE)

  def read(self) -> list[dict]:
    """All records in the file (an unfinished last line is ignored)."""
    if not os.path.exists(self.path):
      return []
    records = []
    with open(self.path) as f:
      for line in f:
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError:
          break  # A line cut short by a kill; everything after is dropped.
    return records

  def truncate(self, last_step: int) -> None:
    """Drops records of steps after `last_step` (atomically)."""
    kept = [r for r in self.read() if r['step'] <= last_step]
    tmp = self.path + '.tmp'
    with open(tmp, 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in kept)
    os.replace(tmp, self.path)

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    record = {'step': int(step), **{k: _clean(v) for k, v in metrics.items()}}
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
      f.flush()

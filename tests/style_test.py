"""Every tracked Python file is formatted by the one formatter, pyink.

Reformat with `.venv/bin/pyink .` (settings: pyproject.toml, the flax
examples' 2-space indentation at 80 columns).
"""

import os
import subprocess
import sys

import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_python_file_is_formatted():
  files = helpers.tracked_files('*.py')
  assert files
  proc = subprocess.run(
      [sys.executable, '-m', 'pyink', '--check', '--quiet', *files],
      cwd=ROOT,
      capture_output=True,
      text=True,
  )
  assert proc.returncode == 0, (
      'not formatted (run `.venv/bin/pyink .`):\n' + proc.stderr[-3000:]
  )

"""Shared test setup: run from the repository root, on CPU, and compile once.

Many tests compile the same tiny programs (in this process and in the
subprocesses they start); JAX's persistent compilation cache turns every
compile after the first into a cache read. The variables are inherited by
the subprocesses.
"""

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault(
    'JAX_COMPILATION_CACHE_DIR',
    os.path.join(tempfile.gettempdir(), 'catgan_jax_test_xla_cache'),
)
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '-1')

from catgan_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

cli.configure()

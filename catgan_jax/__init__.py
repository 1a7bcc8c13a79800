"""catgan_jax: GANs for cat images in JAX/Flax."""

import importlib.util
import os

import jax

# XLA:CPU hands every convolution to YNNPACK by default; its weight gradients
# ran at 3-30 GFLOP/s on DCGAN-64's layers, against 120-140 for XLA's own
# (Eigen) convolutions, and the whole step took 2.6 s instead of 1.8 s at
# batch 64 (jax 0.10.2, 2 cores). The flag only concerns the CPU backend;
# XLA reads it when the first backend starts, so a value set by the user
# wins, and it has no effect if a backend is already running.
# libtpu parses XLA_FLAGS with its own XLA build, which need not know this
# CPU flag (an unknown flag aborts), so TPU installs are left alone.
if ('xla_cpu_experimental_ynn_fusion_type' not in os.environ.get(
    'XLA_FLAGS', '') and importlib.util.find_spec('libtpu') is None):
  os.environ['XLA_FLAGS'] = (
      os.environ.get('XLA_FLAGS', '') +
      ' --xla_cpu_experimental_ynn_fusion_type=-individual_convolution'
  ).strip()

# With partitionable threefry (JAX's default), every parameter initialiser
# compiles its own slow kernel on XLA:CPU: initialising DCGAN-64 took 34 s
# against 8 s without it. The random streams of this project are defined
# with this setting; sharded draws stay identical across device counts.
jax.config.update('jax_threefry_partitionable', False)

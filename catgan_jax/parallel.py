"""Multi-host runtime and the data-parallel device mesh.

Every run, from one CPU to a TPU pod, uses the same code path: a 1-D `Mesh`
named 'data' over all global devices, the batch sharded along it and the
GAN state replicated. BatchNorm inside a jitted step then sees the global
batch, like PyTorch's SyncBatchNorm.
"""

from typing import Any, Iterator

from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np

DATA_AXIS = 'data'


def initialize(dist: ml_collections.ConfigDict) -> None:
  """Initialises `jax.distributed` when `dist.enabled` is set.

  With no explicit coordinator JAX discovers the cluster itself (TPU pods,
  SLURM); otherwise the coordinator address, process count and id are used.

  Args:
    dist: the `config.distributed` block.
  """
  if not dist.enabled:
    return
  # Fields left at their defaults ('' / -1) are discovered by JAX from the
  # environment (TPU metadata, SLURM variables) rather than passed as -1.
  kwargs = {}
  if dist.coordinator_address:
    kwargs['coordinator_address'] = dist.coordinator_address
  if dist.num_processes >= 0:
    kwargs['num_processes'] = dist.num_processes
  if dist.process_id >= 0:
    kwargs['process_id'] = dist.process_id
  logging.info(
      'Initialising jax.distributed with %s',
      kwargs or 'automatic cluster detection',
  )
  jax.distributed.initialize(**kwargs)


def log_topology() -> None:
  """Logs process index/count and local/global device counts."""
  logging.info(
      'process %d of %d; %d local / %d global devices (%s)',
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
      jax.devices()[0].platform,
  )


def create_mesh() -> Mesh:
  """Returns a 1-D mesh over every device of every process."""
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def local_batch_size(global_batch: int) -> int:
  """Per-process batch size; checks that the global batch divides evenly.

  Args:
    global_batch: `config.batch_size`.

  Returns:
    The number of examples each process reads per step.

  Raises:
    ValueError: the batch does not divide the device count.
  """
  n = jax.device_count()
  if global_batch <= 0 or global_batch % n:
    raise ValueError(
        f'batch_size={global_batch} is not divisible by the '
        f'{n} devices (global batch must be a positive multiple '
        'of the device count)'
    )
  return global_batch // jax.process_count()


def to_global(batch: Any, sharding: NamedSharding) -> Any:
  """Assembles the global batch from this process's slice of it.

  `batch` is an array or a tuple of arrays (images, labels).
  """
  return jax.tree.map(
      lambda b: jax.make_array_from_process_local_data(sharding, b), batch
  )


def prefetch_to_mesh(
    batches: Iterator[np.ndarray], sharding: NamedSharding, size: int = 2
) -> Iterator[jax.Array]:
  """Keeps `size` batches in flight to the devices ahead of the consumer."""
  queue = []
  for batch in batches:
    queue.append(to_global(batch, sharding))
    if len(queue) > size:
      yield queue.pop(0)
  yield from queue


def fetch(tree: Any) -> Any:
  """Copies a replicated pytree to host numpy on every process.

  Works in multi-process runs too, where a global array is not fully
  addressable: each process reads its own (identical) replica.
  """
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)

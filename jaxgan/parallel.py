"""Data parallelism over every device of every process: a 1-D mesh with a "data" axis.

The train state is replicated and each global batch is sharded along its first axis. Inside a
jitted step, reductions over the batch axis (losses, BatchNorm statistics) therefore run over the
whole global batch, and results do not depend on the number of devices.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxgan.errors import ConfigError

DATA_AXIS = "data"


def make_mesh() -> Mesh:
  """Returns a mesh over all devices of all processes with one axis, "data"."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(global_batch_size: int) -> None:
  """Raises ConfigError unless the global batch splits evenly over all devices."""
  if global_batch_size % jax.device_count():
    raise ConfigError(
        f"Invalid config value data.batch_size={global_batch_size}: it must be divisible by the "
        f"number of devices ({jax.device_count()}). Pass --config.data.batch_size=<multiple of "
        f"{jax.device_count()}>.")


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles this process's part of a batch and the other processes' parts into global arrays."""
  sharding = batch_sharded(mesh)
  return {
      name: jax.make_array_from_process_local_data(sharding, value)
      for name, value in local_batch.items()
  }


def shard_batch_like(x: jax.Array, reference: jax.Array) -> jax.Array:
  """Inside a jitted step, shards x's first axis as `reference`'s first axis (the batch axis).

  Arrays drawn inside a step, such as latents or per-image random parameters, are otherwise
  replicated. The mesh's "data" axis is explicit, so jax then rejects vmapping them together with
  the sharded batch, and concatenating them with it. Outside a mesh, x is returned as it is.
  """
  sharding = jax.typeof(reference).sharding
  if not sharding.mesh.axis_names:
    return x
  spec = PartitionSpec(sharding.spec[0], *([None] * (x.ndim - 1)))
  return jax.sharding.reshard(x, NamedSharding(sharding.mesh, spec))

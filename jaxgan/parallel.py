"""Data parallelism over every device of every process: a 1-D mesh with a "data" axis.

The train state is replicated and each global batch is sharded along its first axis. Inside a
jitted step, reductions over the batch axis (losses, BatchNorm statistics) therefore run over the
whole global batch, and results do not depend on the number of devices or processes.

With several processes, each one holds the devices of one contiguous block of the mesh, in process
order, so process p of P reads rows [p * B/P, (p + 1) * B/P) of every global batch of B images.
"""

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxgan.errors import ConfigError

DATA_AXIS = "data"


def initialize_processes(
    coordinator_address: str | None,
    num_processes: int | None,
    process_id: int | None,
    timeout_s: int,
) -> None:
  """Starts JAX's multi-controller runtime; call it before any other JAX function.

  Arguments left as None are detected by JAX (0.10) from the cluster environment: SLURM, Open MPI,
  Cloud TPU VMs (GCE and GKE) and Kubernetes jobs. A process that cannot reach the coordinator
  within `timeout_s` seconds is aborted by JAX itself, so the caller sees no exception for that.
  On CPU, cross-process collectives use gloo over TCP, JAX's default
  (`jax_cpu_collectives_implementation`).
  """
  try:
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes,
        process_id=process_id, initialization_timeout=timeout_s)
  except ValueError as error:
    # JAX raises ValueError when neither the flags nor a detected cluster provide a value.
    raise ConfigError(
        f"Could not start the multi-process runtime: {error} No cluster environment (SLURM, "
        "Open MPI, Cloud TPU, Kubernetes) was detected to fill it in. Pass --coordinator_address "
        "host:port, --num_processes and --process_id.") from error


def describe_topology() -> str:
  """Returns one line with this process's index and its local and global devices."""
  local = jax.local_devices()
  return (f"process {jax.process_index()} of {jax.process_count()}, {len(local)} local and "
          f"{jax.device_count()} global {local[0].platform} device(s) ({local[0].device_kind}), "
          f"local device ids {[device.id for device in local]}")


def make_mesh() -> Mesh:
  """Returns a mesh over all devices of all processes with one axis, "data".

  Devices are ordered by (process index, device id), so that each process's devices form one
  contiguous block of the batch axis. `jax.make_mesh` may order a TPU pod's devices in a physical
  ring instead, which can interleave the devices of different hosts.

  NOTE: on a TPU pod, the all-reductions over this order may be slower than over that ring; this
  has not been measured.
  """
  devices = sorted(jax.devices(), key=lambda device: (device.process_index, device.id))
  return Mesh(np.array(devices), (DATA_AXIS,), axis_types=(AxisType.Explicit,))


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


def process_batch_block(mesh: Mesh, global_batch_size: int) -> tuple[int, int]:
  """Returns (index, count): this process's devices hold block `index` of `count` equal blocks.

  The blocks are contiguous ranges of rows of the global batch, and the input pipeline reads only
  this process's block. Raises ValueError when this process's rows are not one contiguous block,
  which `make_mesh` rules out.
  """
  indices = batch_sharded(mesh).addressable_devices_indices_map((global_batch_size,))
  starts = sorted({index[0].start or 0 for index in indices.values()})
  rows_per_device = global_batch_size // mesh.size
  block_size = rows_per_device * len(starts)
  expected = list(range(starts[0], starts[0] + block_size, rows_per_device))
  if starts != expected or starts[0] % block_size:
    raise ValueError(
        f"process {jax.process_index()} holds the batch rows starting at {starts}, which are not "
        f"one contiguous block of {block_size}; build the mesh with parallel.make_mesh")
  return starts[0] // block_size, global_batch_size // block_size

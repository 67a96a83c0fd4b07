"""History of generated images for discriminator updates (Shrivastava et al., 2017), in pure JAX.

CycleGAN updates each discriminator on fakes drawn partly from the 50 most recently stored
generated images, not only from the current generator, which damps oscillation. The pool is a
pytree of arrays in the train state and its randomness comes from an explicit key, so the train
step stays pure and a resumed run draws exactly what an uninterrupted run would.
"""

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ImagePool:
  """Up to `capacity` stored images; slots [0, count) are filled, the rest are zeros."""

  images: jax.Array  # [capacity, H, W, C]
  count: jax.Array  # int32 scalar

  @property
  def capacity(self) -> int:
    return self.images.shape[0]


def create(capacity: int, image_shape: tuple[int, ...], dtype=jnp.float32) -> ImagePool:
  """Returns an empty pool; capacity 0 makes `query` return its input unchanged."""
  if capacity < 0:
    raise ValueError(f"capacity must be >= 0, got {capacity}")
  return ImagePool(images=jnp.zeros((capacity, *image_shape), dtype),
                   count=jnp.zeros((), jnp.int32))


def query(pool: ImagePool, images: jax.Array, key: jax.Array) -> tuple[ImagePool, jax.Array]:
  """Returns (new pool, images for D), handling the batch one image at a time, in order.

  While the pool is not full, each image is stored and returned. Once it is full, each image is
  returned with probability 0.5; otherwise a uniformly chosen stored image is returned and the
  new image takes its slot. This is the rule of the CycleGAN authors' ImagePool. The returned
  images carry no gradient.
  """
  images = jax.lax.stop_gradient(images)
  if pool.capacity == 0:
    return pool, images
  # The scan walks the batch axis, which the trainer shards over devices, so the batch is
  # gathered first. The pool is replicated like the rest of the train state.
  batch_sharding = jax.typeof(images).sharding
  if any(batch_sharding.spec):
    images = jax.sharding.reshard(
        images, jax.sharding.NamedSharding(batch_sharding.mesh, jax.sharding.PartitionSpec()))

  def one_image(stored, inputs):
    pool_images, count = stored
    image, image_key = inputs
    coin_key, slot_key = jax.random.split(image_key)
    use_stored = jax.random.bernoulli(coin_key, 0.5)
    random_slot = jax.random.randint(slot_key, (), 0, pool.capacity)
    full = count >= pool.capacity
    slot = jnp.where(full, random_slot, count)
    swap = full & use_stored
    output = jnp.where(swap, pool_images[random_slot], image)
    write = ~full | use_stored
    pool_images = pool_images.at[slot].set(jnp.where(write, image, pool_images[slot]))
    count = jnp.minimum(count + 1, pool.capacity)
    return (pool_images, count), output

  keys = jax.random.split(key, images.shape[0])
  (pool_images, count), outputs = jax.lax.scan(
      one_image, (pool.images, pool.count), (images.astype(pool.images.dtype), keys))
  outputs = outputs.astype(images.dtype)
  if any(batch_sharding.spec):
    outputs = jax.sharding.reshard(outputs, batch_sharding)
  return ImagePool(images=pool_images, count=count), outputs

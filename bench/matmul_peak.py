"""Measures the matrix-product peak of the default JAX device in float32 and bfloat16.

    python bench/matmul_peak.py
    python bench/matmul_peak.py --size 4096 --repeats 5

Prints one JSON line with the best GFLOP/s of a jitted square product per dtype: float32,
bfloat16 with float32 accumulation (`preferred_element_type=float32`), and bfloat16 with a
bfloat16 result. `bench/step.py` divides a train step's GFLOP/s by these numbers.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp

# (name, input dtype, preferred_element_type of the product).
PRODUCTS = (
    ("float32", jnp.float32, None),
    ("bfloat16_f32_accumulate", jnp.bfloat16, jnp.float32),
    ("bfloat16", jnp.bfloat16, None),
)


def measure_peaks(size: int = 2048, repeats: int = 5) -> dict[str, float]:
  """Returns the best GFLOP/s of a [size, size] x [size, size] product per entry of PRODUCTS.

  The best of `repeats` calls is the estimate of the peak, since on a shared machine the slower
  calls measure the other processes.
  """
  peaks = {}
  for name, dtype, accumulate in PRODUCTS:
    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), dtype)
    product = jax.jit(lambda a, b, accumulate=accumulate: jnp.dot(
        a, b, preferred_element_type=accumulate))
    jax.block_until_ready(product(a, b))
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(product(a, b))
      best = min(best, time.perf_counter() - start)
    peaks[name] = 2.0 * size**3 / best / 1e9
  return peaks


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--size", type=int, default=2048, help="side of the square matrices")
  parser.add_argument("--repeats", type=int, default=5, help="timed products per dtype")
  args = parser.parse_args()
  if args.size < 1 or args.repeats < 1:
    parser.error(f"--size and --repeats must be positive, got {args.size} and {args.repeats}")
  peaks = measure_peaks(args.size, args.repeats)
  print(json.dumps({
      "device": jax.devices()[0].device_kind, "jax": jax.__version__, "size": args.size,
      "gflop_per_s": {name: round(value, 1) for name, value in peaks.items()},
  }), flush=True)


if __name__ == "__main__":
  main()

"""Times the jitted DCGAN train step: compile time, then the median of timed steps.

    python bench/step.py --config configs/w7_128.py --steps 5
    python bench/step.py --config configs/w7_128.py:64 --steps 5 --batch 32
    python bench/step.py --config configs/w7_128.py --steps 5 --dtype bfloat16

Prints one JSON line per run with the median step time and images/s. Synthetic images in
[-1, 1] are used, so the input pipeline is not measured.
"""

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxgan import families  # pylint: disable=wrong-import-position
from jaxgan import parallel  # pylint: disable=wrong-import-position
from jaxgan.models import layers  # pylint: disable=wrong-import-position


def use_stock_layers() -> None:
  """Replaces jaxgan's convolution lowering with the stock one, for comparison.

  The transposed convolution becomes `lax.conv_transpose` (differentiated by JAX), and every
  convolution keeps its padding inside `lax.conv_general_dilated`.
  """

  def stock_conv(x, kernel, stride, padding):
    return jax.lax.conv_general_dilated(
        x, kernel, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def stock_conv_transpose(x, kernel, stride, padding, output_hw):
    kernel_size = kernel.shape[0]
    # lax.conv_transpose pads the stride-dilated input by (k - 1 - p_low, k - 1 - p_high).
    stock_padding = [(kernel_size - 1 - low, kernel_size - 1 - high) for low, high in padding]
    # The kernel given here maps outputs to inputs, [k, k, C_out, C_in], which is what
    # transpose_kernel=True expects as the forward convolution's kernel.
    y = jax.lax.conv_transpose(x, kernel, (stride, stride), stock_padding,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"), transpose_kernel=True)
    return y[:, :output_hw[0], :output_hw[1]]

  layers._conv = stock_conv  # pylint: disable=protected-access
  layers.conv_transpose = stock_conv_transpose


def load_config(spec: str):
  path, _, preset = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("bench_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(preset) if preset else module.get_config()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="configs/w7_128.py")
  parser.add_argument("--batch", type=int, default=0, help="global batch (0 = the config's)")
  parser.add_argument("--steps", type=int, default=5, help="timed steps")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after compiling")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                      help="compute dtype of G and D (config.model.dtype; default: the config's)")
  parser.add_argument("--stock_layers", action="store_true",
                      help="use lax.conv_transpose and in-convolution padding, for comparison")
  args = parser.parse_args()
  if args.stock_layers:
    use_stock_layers()

  config = load_config(args.config)
  if args.batch:
    config.data.batch_size = args.batch
  if args.dtype:
    config.model.dtype = args.dtype
  family = families.get(config.model.family)
  mesh = parallel.make_mesh()
  replicated = parallel.replicated(mesh)
  batch_size, size = config.data.batch_size, config.data.image_size

  state = jax.device_put(family.init_state(config, steps_per_epoch=100), replicated)
  step_fn = jax.jit(family.make_train_step(config, steps_per_epoch=100),
                    in_shardings=(replicated, parallel.batch_sharded(mesh), replicated),
                    out_shardings=(replicated, replicated), donate_argnums=0)
  images = np.random.default_rng(0).uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32)
  batch = parallel.global_batch({"image": images}, mesh)
  key = jax.random.key(0)

  start = time.perf_counter()
  compiled = step_fn.lower(state, batch, key).compile()
  compile_s = time.perf_counter() - start

  for _ in range(args.warmup):
    state, metrics = compiled(state, batch, key)
  jax.block_until_ready(state)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, key)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)

  median = statistics.median(times)
  print(json.dumps({
      "impl": "jaxgan", "jax": jax.__version__, "device": jax.devices()[0].device_kind,
      "devices": jax.device_count(), "config": args.config, "arch": config.model.arch,
      "width": config.model.width, "image_size": size, "batch": batch_size,
      "dtype": config.model.dtype,
      "layers": "stock" if args.stock_layers else "jaxgan",
      "compile_s": round(compile_s, 2), "step_times_s": [round(t, 4) for t in times],
      "median_step_s": round(median, 4), "images_per_s": round(batch_size / median, 2),
      "final_losses": [float(metrics["d_loss"]), float(metrics["g_loss"])],
  }), flush=True)


if __name__ == "__main__":
  main()

"""Times the jitted DCGAN train step: compile time, then the median of timed steps.

    python bench/step.py --config configs/w7_128.py --steps 5
    python bench/step.py --config configs/w7_128.py:64 --steps 5 --batch 32
    python bench/step.py --config configs/reproduct.py --image_size 128 --batch 32 --dtype bfloat16

Prints one JSON line per run: the median step time and images/s, the compile time, the peak
memory (host RSS on CPU, the device's peak bytes in use on GPU and TPU), the FLOPs of one
iteration from XLA's cost analysis, the GFLOP/s that makes, and its fraction of the matrix-product
peak that `bench/matmul_peak.py` measures right after the steps. Synthetic images in [-1, 1] are
used, so the input pipeline is not measured.
"""

import argparse
import importlib.util
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import matmul_peak  # pylint: disable=wrong-import-position
from jaxgan import families  # pylint: disable=wrong-import-position
from jaxgan import parallel  # pylint: disable=wrong-import-position
from jaxgan.families import dcgan as dcgan_family  # pylint: disable=wrong-import-position
from jaxgan.models import layers  # pylint: disable=wrong-import-position

# The `bench/matmul_peak.py` product that bounds a step computing in each model dtype.
PEAK_FOR_DTYPE = {"float32": "float32", "bfloat16": "bfloat16_f32_accumulate"}


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


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path.py` or `path.py:preset` as `jaxgan.main --config` does."""
  path, _, preset = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("bench_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(preset) if preset else module.get_config()


def set_model_dtype(config: ml_collections.ConfigDict, dtype: str) -> None:
  """Sets config.model.dtype, the compute dtype of the networks; raises if the config lacks it."""
  if "dtype" in config.model:
    config.model.dtype = dtype
  elif dtype != "float32":
    raise SystemExit(
        f"error: --dtype {dtype} needs config.model.dtype, which this version of jaxgan's DCGAN "
        "config does not have; run with --dtype float32.")


def peak_memory() -> dict[str, float]:
  """Returns the peak host RSS in MiB, and the device's peak bytes in use in MiB where reported.

  XLA:CPU reports no device memory statistics; its buffers are part of the host RSS.
  """
  # ru_maxrss is in KiB on Linux.
  memory = {"host_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    memory["device_peak_mib"] = round(stats["peak_bytes_in_use"] / 2**20)
  return memory


def _xla_flop(function, *args) -> float:
  return jax.jit(function).lower(*args).compile().cost_analysis()["flops"]


def component_flop_counts(config: ml_collections.ConfigDict, state) -> dict[str, float]:
  """Returns XLA's FLOP counts of the parts of a DCGAN train step, each compiled on its own.

  The parts are G's forward pass and G's forward pass with its VJP with respect to G's
  parameters. Then come D's loss and parameter gradients on a real and a fake batch, and the
  gradient of G's loss with respect to the fakes through D. If the step reuses G's forward pass between the
  D and the G update, its count is about the sum of the last three plus the optimizer updates; a
  second G forward pass would add the first.
  """
  graphdef_g, graphdef_d = state.g_graphdef, state.d_graphdef
  batch, size = config.data.batch_size, config.data.image_size
  z = jnp.zeros((batch, config.model.latent_dim))
  images = jnp.zeros((batch, size, size, 3))

  def generate(g_params):
    return dcgan_family._apply(graphdef_g, g_params, state.g_stats, z, train=True)[0]  # pylint: disable=protected-access

  def g_forward_backward(g_params):
    fakes, vjp = jax.vjp(generate, g_params)
    return vjp(fakes)

  def discriminate(d_params, x):
    return dcgan_family._apply(graphdef_d, d_params, state.d_stats, x, train=True)[0]  # pylint: disable=protected-access

  def d_loss(d_params, real, fakes):
    return (jnp.sum(discriminate(d_params, real)) + jnp.sum(discriminate(d_params, fakes)))

  def g_loss_gradient(d_params, fakes):
    return jax.grad(lambda f: jnp.sum(discriminate(d_params, f)))(fakes)

  return {
      "g_forward": _xla_flop(generate, state.g_params),
      "g_forward_backward": _xla_flop(g_forward_backward, state.g_params),
      "d_update_gradients": _xla_flop(jax.grad(d_loss), state.d_params, images, images),
      "g_loss_gradient_through_d": _xla_flop(g_loss_gradient, state.d_params, images),
  }


class StepBenchmark:
  """A compiled DCGAN train step on one synthetic batch, with its state, ready to be timed."""

  def __init__(self, config: ml_collections.ConfigDict):
    family = families.get(config.model.family)
    mesh = parallel.make_mesh()
    replicated = parallel.replicated(mesh)
    batch_size, size = config.data.batch_size, config.data.image_size
    self.batch_size = batch_size

    self.state = jax.device_put(family.init_state(config, steps_per_epoch=100), replicated)
    step_fn = jax.jit(family.make_train_step(config, steps_per_epoch=100),
                      in_shardings=(replicated, parallel.batch_sharded(mesh), replicated),
                      out_shardings=(replicated, replicated), donate_argnums=0)
    images = np.random.default_rng(0).uniform(-1, 1, (batch_size, size, size, 3))
    self.batch = parallel.global_batch({"image": images.astype(np.float32)}, mesh)
    self.key = jax.random.key(0)

    start = time.perf_counter()
    self.compiled = step_fn.lower(self.state, self.batch, self.key).compile()
    self.compile_s = time.perf_counter() - start
    self.flop_per_step = self.compiled.cost_analysis()["flops"]
    self.metrics = None

  def run(self, steps: int) -> list[float]:
    """Runs `steps` train steps; returns the seconds of each, waiting for every result."""
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      self.state, self.metrics = self.compiled(self.state, self.batch, self.key)
      jax.block_until_ready((self.state, self.metrics))
      times.append(time.perf_counter() - start)
    return times

  def final_losses(self) -> list[float]:
    return [float(self.metrics["d_loss"]), float(self.metrics["g_loss"])]


def add_model_flags(parser: argparse.ArgumentParser) -> None:
  """Adds the flags that select the config, its size, batch, dtype and convolution lowering."""
  parser.add_argument("--config", default="configs/w7_128.py",
                      help="config file, optionally with a preset (file.py:preset)")
  parser.add_argument("--batch", type=int, default=0, help="global batch (0 = the config's)")
  parser.add_argument("--image_size", type=int, default=0,
                      help="image side in pixels (0 = the config's)")
  parser.add_argument("--dtype", default="float32", choices=sorted(PEAK_FOR_DTYPE),
                      help="compute dtype of the networks (config.model.dtype)")
  parser.add_argument("--formulation", default="", choices=["", *sorted(layers.CONV_FORMULATIONS)],
                      help="convolution formulation of models/layers.py (empty = its default)")
  parser.add_argument("--stock_layers", action="store_true",
                      help="use lax.conv_transpose and in-convolution padding, for comparison")


def config_from_flags(args: argparse.Namespace) -> ml_collections.ConfigDict:
  """Loads the config named by the flags of `add_model_flags` and applies their overrides."""
  if args.stock_layers:
    use_stock_layers()
  elif args.formulation:
    layers.set_conv_formulation(args.formulation)
  config = load_config(args.config)
  if args.batch:
    config.data.batch_size = args.batch
  if args.image_size:
    config.data.image_size = args.image_size
  set_model_dtype(config, args.dtype)
  families.get(config.model.family).validate(config)
  return config


def layers_name(args: argparse.Namespace) -> str:
  if args.stock_layers:
    return "stock"
  return args.formulation or "default"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_model_flags(parser)
  parser.add_argument("--steps", type=int, default=5, help="timed steps")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after compiling")
  parser.add_argument("--no_peak", action="store_true",
                      help="skip the matrix-product peak measurement after the steps")
  parser.add_argument("--flop_model", action="store_true",
                      help="also report XLA's FLOP counts of the parts of the step, to check that "
                      "G's forward pass runs once")
  args = parser.parse_args()
  if args.steps < 1 or args.warmup < 0:
    parser.error(f"--steps must be >= 1 and --warmup >= 0, got {args.steps} and {args.warmup}")
  config = config_from_flags(args)

  bench = StepBenchmark(config)
  bench.run(args.warmup)
  times = bench.run(args.steps)
  median = statistics.median(times)
  gflop = bench.flop_per_step / 1e9
  result = {
      "impl": "jaxgan", "jax": jax.__version__, "device": jax.devices()[0].device_kind,
      "devices": jax.device_count(), "config": args.config, "arch": config.model.arch,
      "width": config.model.width, "image_size": config.data.image_size,
      "batch": bench.batch_size, "dtype": args.dtype, "layers": layers_name(args),
      "compile_s": round(bench.compile_s, 2), "step_times_s": [round(t, 4) for t in times],
      "median_step_s": round(median, 4), "images_per_s": round(bench.batch_size / median, 2),
      "xla_gflop_per_step": round(gflop, 1), "gflop_per_s": round(gflop / median, 1),
      **peak_memory(),
      "final_losses": bench.final_losses(),
  }
  if args.flop_model:
    parts = component_flop_counts(config, bench.state)
    result.update({f"xla_gflop_{name}": round(flop / 1e9, 2) for name, flop in parts.items()})
    reused = (parts["g_forward_backward"] + parts["d_update_gradients"]
              + parts["g_loss_gradient_through_d"])
    result["xla_gflop_parts_with_one_g_forward"] = round(reused / 1e9, 2)
  if not args.no_peak:
    peak = matmul_peak.measure_peaks()[PEAK_FOR_DTYPE[args.dtype]]
    result["matmul_peak_gflop_per_s"] = round(peak, 1)
    result["fraction_of_peak"] = round(gflop / median / peak, 3)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()

"""Times the jitted BigGAN-lite train step and its parts on synthetic labelled images.

    python bench/biggan_step.py --config configs/biggan_lite_chars32.py --steps 5
    python bench/biggan_step.py --config configs/biggan_lite_chars32.py --parts

Prints one JSON line: the compile time, the median step time, XLA's FLOP count of the step and
how many times the step compiled again after its first call (0 unless it retraces). With
--parts it adds the median time and XLA FLOP count of each part compiled on its own. The parts
are G's and D's forward passes, D's gradient, one spectral-norm power iteration of every weight,
the self-attention block, each DiffAugment op with its gradient, the orthogonal regulariser with
its gradient and the EMA update. XLA's cost analysis counts the body of a loop once. The step is jitted as the trainer jits it (explicit shardings, donated state, the
family's step inputs as arguments).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import step as step_bench  # pylint: disable=wrong-import-position
from jaxgan import diffaugment  # pylint: disable=wrong-import-position
from jaxgan import families  # pylint: disable=wrong-import-position
from jaxgan import parallel  # pylint: disable=wrong-import-position
from jaxgan.families import biggan as biggan_family  # pylint: disable=wrong-import-position
from jaxgan.models import biggan as biggan_models  # pylint: disable=wrong-import-position


class _CompileCounter:
  """Counts XLA compilations through jax's monitoring events."""

  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, event: str, duration: float, **kwargs) -> None:
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1


def _time(function, *args, repeats: int) -> float:
  """Returns the median seconds of `repeats` calls of compiled `function`, after one warm-up."""
  jax.block_until_ready(function(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _measure(function, *args, repeats: int) -> dict[str, float]:
  compiled = jax.jit(function).lower(*args).compile()
  return {"ms": round(_time(compiled, *args, repeats=repeats) * 1e3, 2),
          "mflop": round(compiled.cost_analysis()["flops"] / 1e6, 1)}


class BigGANStepBenchmark:
  """A compiled BigGAN train step on one synthetic labelled batch, with its state."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    family = families.get(config.model.family)
    mesh = parallel.make_mesh()
    replicated = parallel.replicated(mesh)
    batch_size, size = config.data.batch_size, config.data.image_size
    self.state = jax.device_put(family.init_state(config, steps_per_epoch=100), replicated)
    train_step = family.make_train_step(config, steps_per_epoch=100)
    rng = np.random.default_rng(0)
    local = {"image": rng.uniform(-1, 1, (batch_size, size, size, 3)).astype(np.float32)}
    if config.model.num_classes:
      local["label"] = rng.integers(0, config.model.num_classes, batch_size).astype(np.int32)
    self.batch = {**parallel.global_batch(local, mesh),
                  **jax.device_put(family.step_inputs(config), replicated)}
    shardings = {name: parallel.batch_sharded(mesh) for name in local}
    shardings.update({name: replicated for name in family.step_inputs(config)})
    step_fn = jax.jit(train_step, in_shardings=(replicated, shardings, replicated),
                      out_shardings=(replicated, replicated), donate_argnums=0)
    self.key = jax.random.key(0)
    start = time.perf_counter()
    self.compiled = step_fn.lower(self.state, self.batch, self.key).compile()
    self.compile_s = time.perf_counter() - start
    self.flop_per_step = self.compiled.cost_analysis()["flops"]
    self.jitted = step_fn
    self.metrics = None

  def run(self, steps: int, *, use_jit: bool = False) -> list[float]:
    """Runs `steps` steps; returns the seconds of each. `use_jit` calls the jitted function
    (which would recompile on a retrace) instead of the compiled executable."""
    times = []
    function = self.jitted if use_jit else self.compiled
    for _ in range(steps):
      start = time.perf_counter()
      self.state, self.metrics = function(self.state, self.batch, self.key)
      jax.block_until_ready((self.state, self.metrics))
      times.append(time.perf_counter() - start)
    return times


def measure_parts(bench: BigGANStepBenchmark, repeats: int) -> dict[str, dict[str, float]]:
  """Returns {part: {"ms", "mflop"}} for the parts of the step, each compiled on its own."""
  config, state = bench.config, bench.state
  part = config.data.batch_size // config.loss.d_steps
  size = config.data.image_size
  key = jax.random.key(1)
  z = jax.random.normal(key, (part, config.model.latent_dim))
  labels = jnp.arange(part, dtype=jnp.int32) % max(config.model.num_classes, 1)
  images = jax.random.uniform(key, (2 * part, size, size, 3), minval=-1.0, maxval=1.0)
  both_labels = jnp.concatenate([labels, labels])
  ops = diffaugment.parse_policy(config.loss.augment)

  def generate(g_params):
    return biggan_family._generate(  # pylint: disable=protected-access
        state.g_graphdef, g_params, state.g_stats, z, labels, train=True)

  def discriminate(d_params, x):
    return biggan_family._discriminate(  # pylint: disable=protected-access
        state.d_graphdef, d_params, state.d_stats, x, both_labels)

  def d_gradient(d_params, x):
    return jax.grad(lambda p: jnp.sum(discriminate(p, x)[0]))(d_params)

  def power_iterations(g_params, g_stats, d_params, d_stats):
    sigmas = []
    for graphdef, params, stats in ((state.g_graphdef, g_params, g_stats),
                                    (state.d_graphdef, d_params, d_stats)):
      model = nnx.merge(graphdef, params, stats, copy=True)
      for _, module in nnx.iter_graph(model):
        if isinstance(module, biggan_models._SpectralWeight):  # pylint: disable=protected-access
          sigmas.append(module.normalized_kernel(True).sum())
    return jnp.stack(sigmas)

  results = {
      "g_forward": _measure(generate, state.g_params, repeats=repeats),
      "d_forward": _measure(discriminate, state.d_params, images, repeats=repeats),
      "d_gradient": _measure(d_gradient, state.d_params, images, repeats=repeats),
      "spectral_norm_all_weights": _measure(
          power_iterations, state.g_params, state.g_stats, state.d_params, state.d_stats,
          repeats=repeats),
  }

  g_model = nnx.merge(state.g_graphdef, state.g_params, state.g_stats, copy=True)
  if g_model.attention is not None:
    attention_graphdef, attention_state = nnx.split(g_model.attention)
    channels = g_model.attention.value.weight.kernel.shape[2]
    resolution = config.model.attention_resolution
    features = jax.random.normal(key, (part, resolution, resolution, channels))

    def attention_gradient(attention_state, x):
      def loss(s, x):
        return jnp.sum(nnx.merge(attention_graphdef, s)(x, True))
      return jax.grad(loss, argnums=(0, 1))(attention_state, x)

    results["g_attention_gradient"] = _measure(
        attention_gradient, attention_state, features, repeats=repeats)

  for index, op in enumerate(ops):
    def augment_gradient(x, op=op, index=index):
      return jax.grad(lambda x: jnp.sum(diffaugment.augment(x, jax.random.fold_in(key, index),
                                                            (op,)) ** 2))(x)
    results[f"augment_{op}_gradient"] = _measure(augment_gradient, images, repeats=repeats)

  results["orthogonal_gradient"] = _measure(
      jax.grad(biggan_family.orthogonal_regularization), state.g_params, repeats=repeats)
  results["ema_update"] = _measure(
      lambda ema, params: biggan_family.ema_update(ema, params, jnp.int32(10**6),
                                                   jnp.float32(0.999), 0),
      state.ema_params, state.g_params, repeats=repeats)
  return results


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="configs/biggan_lite_chars32.py",
                      help="BigGAN config file, optionally with a preset (file.py:preset)")
  parser.add_argument("--steps", type=int, default=5, help="timed steps")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after compiling")
  parser.add_argument("--parts", action="store_true",
                      help="also time the parts of the step, each compiled on its own")
  parser.add_argument("--part_repeats", type=int, default=5, help="timed calls of each part")
  args = parser.parse_args()
  if args.steps < 1 or args.warmup < 0:
    parser.error(f"--steps must be >= 1 and --warmup >= 0, got {args.steps} and {args.warmup}")
  config = step_bench.load_config(args.config)
  family = families.get(config.model.family)
  if config.model.family != "biggan":
    parser.error(f"--config must be a BigGAN config, got model.family={config.model.family!r}")
  family.validate(config)

  counter = _CompileCounter()
  bench = BigGANStepBenchmark(config)
  # The first call of the jitted function compiles it once more (the AOT compile above does not
  # fill jit's cache), so the count starts after the warm-up.
  bench.run(max(args.warmup, 1), use_jit=True)
  compiles_before = counter.count
  times = bench.run(args.steps, use_jit=True)
  median = statistics.median(times)
  result = {
      "jax": jax.__version__, "device": jax.devices()[0].device_kind,
      "devices": jax.device_count(), "config": args.config,
      "batch": config.data.batch_size, "image_size": config.data.image_size,
      "compile_s": round(bench.compile_s, 2), "step_times_s": [round(t, 4) for t in times],
      "median_step_s": round(median, 4),
      "xla_gflop_per_step": round(bench.flop_per_step / 1e9, 3),
      "compiles_while_stepping": counter.count - compiles_before,
      "final_losses": [float(bench.metrics["d_loss"]), float(bench.metrics["g_loss"])],
  }
  if args.parts:
    result["parts"] = measure_parts(bench, args.part_repeats)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()

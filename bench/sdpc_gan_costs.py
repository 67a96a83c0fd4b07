"""Measures the code sparsity of finished SDPC-GAN runs and the cost of each arm's train step.

    python bench/sdpc_gan_costs.py sparsity --workdir runs/sdpc_gan_eval/seed-0__arch-sdpc_generator
    python bench/sdpc_gan_costs.py cost --workdir runs/sdpc_gan_eval/seed-0__arch-w7 \
        --workdir runs/sdpc_gan_eval/seed-0__arch-sdpc_generator \
        --workdir runs/sdpc_gan_eval/seed-0__arch-sdpc_discriminator --rounds 5 --steps 3

`sparsity` restores the newest checkpoint of each workdir (a DCGAN-family run with an SDPC
architecture) and prints one JSON line per run:
  - sdpc_generator: the top-layer code map gamma_L = ReLU(u - softplus(tau)) of --num fixed
    latents (the run's `fixed_latents`), BatchNorm in inference mode (running statistics): the
    fraction of non-zero codes, the mean L1 norm per image, and the fraction of atoms that are
    zero for every latent.
  - sdpc_discriminator: the codes after the discriminator's unrolled FISTA iterations, on --num
    real training images (chosen with --seed, as `jaxgan.evaluate` chooses them) and on --num
    images of the run's generator: per layer the fraction of non-zero codes, the mean L1 norm
    per image and the relative reconstruction error in pixels, ||x - D_1^T ... D_i^T gamma_i||^2 /
    ||x||^2 averaged over images, the quantity the "sdpc" family logs as recon_error_i. The same
    numbers for inference run to convergence with the dictionaries' own settings on the real
    images are the reference.

`cost` builds each workdir's jitted train step from its saved config (bench/step.py's
StepBenchmark, synthetic images, the run's batch). It times them in one process, arm after arm
for --rounds rounds of --steps steps, so that load from other processes falls on all arms alike. It prints the median step time over all timed steps, each round's median, XLA's FLOP
count per step and the ratios to the first workdir.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import step as step_bench  # pylint: disable=wrong-import-position
from jaxgan import cli  # pylint: disable=wrong-import-position
from jaxgan.errors import ConfigError  # pylint: disable=wrong-import-position
from jaxgan.evaluation import evaluator  # pylint: disable=wrong-import-position
from jaxgan.evaluation import runs  # pylint: disable=wrong-import-position
from jaxgan.families import sdpc as sdpc_family  # pylint: disable=wrong-import-position
from jaxgan.models import sdpc_gan  # pylint: disable=wrong-import-position
from jaxgan.sdpc import inference  # pylint: disable=wrong-import-position

BATCH = 64  # images per jitted inference call


def _rounded(metrics: dict[str, jax.Array]) -> dict[str, float]:
  return {name: round(float(value), 4) for name, value in metrics.items()}


def generator_sparsity(run: runs.Run, num: int) -> dict[str, float]:
  """Returns the sparsity of the top-layer code map of `num` fixed latents (inference mode)."""
  state = run.state

  @jax.jit
  def top_codes(params, stats, z):
    generator = nnx.merge(state.g_graphdef, params, stats)
    return generator.codes(z, train=False)

  latents = run.family.fixed_latents(run.config, num)
  codes = jnp.concatenate([
      top_codes(state.g_params, state.g_stats, latents[start:start + BATCH])
      for start in range(0, num, BATCH)])
  per_atom_active = jnp.any(codes > 0, axis=(0, 1, 2))
  return {
      "num_latents": num,
      "code_map_shape": list(codes.shape[1:]),
      "active_fraction": round(float(jnp.mean(codes > 0)), 4),
      "l1_per_image": round(float(jnp.mean(jnp.sum(codes, axis=(1, 2, 3)))), 3),
      "atoms_never_active_fraction": round(float(1.0 - jnp.mean(per_atom_active)), 4),
  }


def _batched_code_metrics(images: np.ndarray, infer_fn, dictionaries, layers, settings):
  """Averages the "sdpc" family's code metrics over batches of `images`, weighted by size."""
  totals, count = {}, 0
  for start in range(0, len(images), BATCH):
    batch = jnp.asarray(images[start:start + BATCH])
    result = infer_fn(batch)
    # pylint: disable-next=protected-access
    metrics = sdpc_family._code_metrics(batch, result, dictionaries, layers, settings)
    for name, value in metrics.items():
      totals[name] = totals.get(name, 0.0) + float(value) * len(batch)
    count += len(batch)
  return _rounded({name: total / count for name, total in totals.items()})


def discriminator_sparsity(run: runs.Run, num: int, seed: int) -> dict[str, object]:
  """Returns per-layer code metrics of the unrolled inference on real and generated images."""
  state = run.state
  discriminator = nnx.merge(state.d_graphdef, state.d_params, state.d_stats)
  dictionaries = tuple(variable[...] for variable in discriminator.dictionaries)
  layers, settings = discriminator.layers, discriminator.settings
  steps, etas = discriminator.unrolled_steps, discriminator.etas

  # The dictionaries are arguments, not closed-over constants, which XLA would constant-fold.
  @jax.jit
  def unrolled_jit(images, atoms):
    codes = inference.infer_unrolled(images, atoms, layers, settings, etas, steps)
    return inference.InferenceResult(
        codes=codes, iterations=jnp.full(images.shape[0], steps, jnp.int32))

  @jax.jit
  def converged_jit(images, atoms):
    return inference.infer(images, atoms, layers, settings, etas)

  def unrolled(images):
    return unrolled_jit(images, dictionaries)

  def converged(images):
    return converged_jit(images, dictionaries)

  reals = evaluator.load_real_images(run.config, max_images=num, seed=seed)
  real_images = reals.images.astype(np.float32) / 127.5 - 1.0
  latents = run.family.fixed_latents(run.config, num)
  generate = jax.jit(run.family.generate)
  fakes = np.concatenate([
      np.asarray(generate(state, latents[start:start + BATCH]))
      for start in range(0, num, BATCH)])
  measured = {}
  for name, images in (("real", real_images), ("fake", fakes)):
    metrics = _batched_code_metrics(images, unrolled, dictionaries, layers, settings)
    # Every image runs exactly `steps` iterations, so the iteration counts carry no information.
    del metrics["iterations"], metrics["max_iterations_hit"]
    measured[name] = metrics
  return {
      "unrolled_steps": steps,
      "num_real": len(real_images),
      "num_fake": len(fakes),
      **measured,
      "real_converged": _batched_code_metrics(
          real_images, converged, dictionaries, layers, settings),
  }


def sparsity(args: argparse.Namespace) -> None:
  for workdir in args.workdir:
    arch = runs.load_config(workdir).model.get("arch")
    if arch not in sdpc_gan.FUSION_ARCHITECTURES:
      raise ConfigError(
          f"Run {workdir} has model.arch={arch!r}, which has no SDPC codes. Pass a run of "
          f"{' or '.join(sdpc_gan.FUSION_ARCHITECTURES)}.")
    run = runs.load_run(workdir)
    result = {"workdir": run.workdir, "arch": arch, "seed": run.config.seed, "step": run.step}
    if arch == "sdpc_generator":
      result.update(generator_sparsity(run, args.num))
    else:
      result.update(discriminator_sparsity(run, args.num, args.seed))
    print(json.dumps(result), flush=True)


def cost(args: argparse.Namespace) -> None:
  benches = []
  for workdir in args.workdir:
    config = runs.load_config(workdir)
    benches.append((workdir, config, step_bench.StepBenchmark(config)))
  for _, _, bench in benches:
    bench.run(1)  # warm-up

  times = [[] for _ in benches]
  round_medians = [[] for _ in benches]
  for _ in range(args.rounds):
    for index, (_, _, bench) in enumerate(benches):
      step_times = bench.run(args.steps)
      times[index].extend(step_times)
      round_medians[index].append(round(statistics.median(step_times), 4))

  reference_s = statistics.median(times[0])
  reference_flop = benches[0][2].flop_per_step
  for index, (workdir, config, bench) in enumerate(benches):
    median = statistics.median(times[index])
    print(json.dumps({
        "workdir": workdir, "arch": config.model.arch, "width": config.model.width,
        "image_size": config.data.image_size, "batch": bench.batch_size,
        "device": jax.devices()[0].device_kind, "compile_s": round(bench.compile_s, 1),
        "rounds": args.rounds, "steps_per_round": args.steps,
        "median_step_s": round(median, 4), "round_medians_s": round_medians[index],
        "xla_gflop_per_step": round(bench.flop_per_step / 1e9, 2),
        "step_time_ratio": round(median / reference_s, 2),
        "gflop_ratio": round(bench.flop_per_step / reference_flop, 2),
    }), flush=True)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
  parser = cli.ArgumentParser(prog="bench/sdpc_gan_costs.py", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  sparse = commands.add_parser("sparsity", help="code sparsity of finished SDPC-GAN runs")
  sparse.add_argument("--workdir", action="append", required=True,
                      help="workdir of a finished run; repeat for several")
  sparse.add_argument("--num", type=int, default=256, help="images or latents per measurement")
  sparse.add_argument("--seed", type=int, default=0, help="seed that chooses the real images")
  timing = commands.add_parser("cost", help="alternating timing of the arms' train steps")
  timing.add_argument("--workdir", action="append", required=True,
                      help="run whose saved config defines an arm; the first is the reference")
  timing.add_argument("--rounds", type=int, default=5, help="rounds over all arms")
  timing.add_argument("--steps", type=int, default=3, help="timed steps per arm and round")
  args = parser.parse_args(argv)
  if args.command == "sparsity" and args.num < 1:
    parser.error(f"--num must be >= 1, got {args.num}")
  if args.command == "cost" and (args.rounds < 1 or args.steps < 1):
    parser.error(f"--rounds and --steps must be >= 1, got {args.rounds} and {args.steps}")
  return args


def main(args: argparse.Namespace) -> None:
  if args.command == "sparsity":
    sparsity(args)
  else:
    cost(args)


if __name__ == "__main__":
  cli.run(main, parse_arguments)

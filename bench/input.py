"""Measures the input pipeline alone in images/s and compares it with what the train step consumes.

    python bench/input.py --dir /path/to/simpsons_faces --image_size 128 --batch 32
    python bench/input.py --dir /path/to/simpsons_faces --step_images_per_s 3.0

Four numbers, each in images/s:
  decode: `folder.make_source` decoding every PNG or JPEG file once and resizing it to the image
    size (what a run does at start when the decoded images fit in data.cache_max_gib);
  cached_pipeline: one epoch of `pipeline.make_epoch_dataset` over those decoded images (shuffle
    order, batching, conversion to float32 in [-1, 1], prefetch), as the trainer iterates it;
  streaming_pipeline: the same epoch with data.cache_max_gib = 0, so every batch decodes its
    files again;
  augment: `augment_real` (random flips and noise on the real batch), jitted on its own. It runs
    inside the train step, on the accelerator, and so also counts in the step's time.
The step's images/s comes from `--step_images_per_s` (for example bench/step.py's result) or, when
that is 0, from a short measurement of the config's train step here. The headroom is the slowest
pipeline rate over the step rate; it should be at least 20.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import step as step_bench  # pylint: disable=wrong-import-position
from jaxgan.data import folder  # pylint: disable=wrong-import-position
from jaxgan.data import pipeline  # pylint: disable=wrong-import-position
from jaxgan.errors import JaxganError  # pylint: disable=wrong-import-position
from jaxgan.families import dcgan as dcgan_family  # pylint: disable=wrong-import-position


def epoch_images_per_s(source, batch: int, prefetch_batches: int, epoch: int = 1) -> float:
  """Returns the images/s of iterating one epoch of the pipeline, as the trainer does."""
  start = time.perf_counter()
  dataset = pipeline.make_epoch_dataset(
      source, seed=0, epoch=epoch, global_batch_size=batch, prefetch_batches=prefetch_batches)
  num_images = 0
  for element in pipeline.iterate_epoch(dataset):
    num_images += element["image"].shape[0]
  return num_images / (time.perf_counter() - start)


def augment_images_per_s(batch: int, image_size: int, repeats: int = 5) -> float:
  """Returns the images/s of the jitted flips and noise of the train step on one batch."""
  images = np.random.default_rng(0).uniform(-1, 1, (batch, image_size, image_size, 3))
  images = jax.device_put(images.astype(np.float32))
  augment = jax.jit(lambda x, key: dcgan_family.augment_real(
      x, key, random_flip=True, noise_max=0.1))
  jax.block_until_ready(augment(images, jax.random.key(0)))
  times = []
  for index in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(augment(images, jax.random.key(index)))
    times.append(time.perf_counter() - start)
  return batch / statistics.median(times)


def measure_step_images_per_s(args: argparse.Namespace, steps: int = 2) -> float:
  step_args = argparse.Namespace(
      config=args.config, batch=args.batch, image_size=args.image_size, dtype="float32",
      formulation="", stock_layers=False)
  bench = step_bench.StepBenchmark(step_bench.config_from_flags(step_args))
  bench.run(1)
  return bench.batch_size / statistics.median(bench.run(steps))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dir", required=True, help="folder of training images (PNG or JPEG)")
  parser.add_argument("--image_size", type=int, default=128, help="image side in pixels")
  parser.add_argument("--batch", type=int, default=32, help="global batch")
  parser.add_argument("--num_threads", type=int, default=0,
                      help="decoding threads (data.num_threads; 0 = one per CPU core)")
  parser.add_argument("--prefetch_batches", type=int, default=2, help="data.prefetch_batches")
  parser.add_argument("--config", default="configs/w7_128.py",
                      help="config whose train step is measured when --step_images_per_s is 0")
  parser.add_argument("--step_images_per_s", type=float, default=0.0,
                      help="images/s of the train step (0 = measure it here)")
  args = parser.parse_args()
  if args.image_size < 1 or args.batch < 1:
    parser.error(f"--image_size and --batch must be positive, got {args.image_size} and "
                 f"{args.batch}")

  try:
    start = time.perf_counter()
    cached = folder.make_source(args.dir, args.image_size, min_images=args.batch,
                                num_threads=args.num_threads)
    decode = cached.num_images / (time.perf_counter() - start)
    streaming = folder.make_source(args.dir, args.image_size, min_images=args.batch,
                                   cache_max_bytes=0, num_threads=args.num_threads)
  except JaxganError as error:
    raise SystemExit(f"error: {error}") from None

  # An untimed epoch first, so that TensorFlow's start-up cost counts in no rate.
  epoch_images_per_s(cached, args.batch, args.prefetch_batches, epoch=0)
  rates = {
      "decode": decode,
      "cached_pipeline": epoch_images_per_s(cached, args.batch, args.prefetch_batches),
      "streaming_pipeline": epoch_images_per_s(streaming, args.batch, args.prefetch_batches),
      "augment": augment_images_per_s(args.batch, args.image_size),
  }
  step_rate = args.step_images_per_s or measure_step_images_per_s(args)
  # The pipeline rate that bounds a run: the cached one when the images fit in memory, which is
  # the default for this data set, and the streaming one otherwise. Both are reported.
  print(json.dumps({
      "dir": args.dir, "num_images": cached.num_images, "image_size": args.image_size,
      "batch": args.batch, "cpu_threads": args.num_threads or "all",
      **{f"{name}_images_per_s": round(rate, 1) for name, rate in rates.items()},
      "step_images_per_s": round(step_rate, 2),
      "headroom_cached": round(rates["cached_pipeline"] / step_rate, 1),
      "headroom_streaming": round(rates["streaming_pipeline"] / step_rate, 1),
  }), flush=True)


if __name__ == "__main__":
  main()

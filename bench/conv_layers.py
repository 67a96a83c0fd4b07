"""Times every convolution of a DCGAN, forward and backward, under each convolution formulation.

    python bench/conv_layers.py --arch w7 --image_size 128 --batch 32
    python bench/conv_layers.py --arch reproduct --image_size 128 --batch 32 --dtype bfloat16

For each Conv and ConvTranspose layer of the generator and the discriminator, in call order,
prints one JSON line. It contains the median time of a jitted forward pass plus the gradients
with respect to the input and the kernel, per formulation (`layers.CONV_FORMULATIONS` for convolutions,
"transpose/conv" pairs of `layers.TRANSPOSE_FORMULATIONS` and `layers.CONV_FORMULATIONS` for
transposed ones), and the GFLOP/s of those three passes (3 x the forward multiply-adds x 2).
The last line sums the times per formulation over the layers that it applies to.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxgan.models import dcgan  # pylint: disable=wrong-import-position
from jaxgan.models import layers  # pylint: disable=wrong-import-position


def record_layers(arch: str, image_size: int, width: int) -> list[dict]:
  """Returns the arguments of every convolution call of G and D at batch 1, in call order."""
  calls = []
  depth = [0]
  original_conv, original_transpose = layers._conv, layers.conv_transpose  # pylint: disable=protected-access

  def recording_conv(x, kernel, stride, padding):
    if not depth[0]:
      calls.append({"kind": "conv", "x": x.shape, "kernel": kernel.shape, "stride": stride,
                    "padding": tuple(padding)})
    return original_conv(x, kernel, stride, padding)

  def recording_transpose(x, kernel, stride, padding, output_hw):
    calls.append({"kind": "transpose", "x": x.shape, "kernel": kernel.shape, "stride": stride,
                  "padding": tuple(padding), "output_hw": tuple(output_hw)})
    depth[0] += 1
    try:
      return original_transpose(x, kernel, stride, padding, output_hw)
    finally:
      depth[0] -= 1

  layers._conv, layers.conv_transpose = recording_conv, recording_transpose  # pylint: disable=protected-access
  try:
    generator, discriminator = dcgan.build(arch, image_size, 100, 1e-5, width, jax.random.key(0))
    jax.eval_shape(lambda z: generator(z, train=False), jnp.zeros((1, 100)))
    for call in calls:
      call["network"] = "G"
    num_g = len(calls)
    jax.eval_shape(lambda x: discriminator(x, train=False),
                   jnp.zeros((1, image_size, image_size, 3)))
    for call in calls[num_g:]:
      call["network"] = "D"
  finally:
    layers._conv, layers.conv_transpose = original_conv, original_transpose  # pylint: disable=protected-access
  return calls


def forward_flop(call: dict, batch: int) -> float:
  """Returns 2 x the multiply-adds of one forward pass of the recorded layer at `batch`."""
  kernel_h, kernel_w, in_channels, out_channels = call["kernel"]
  if call["kind"] == "conv":
    # The output size of a strided convolution, from the padded input.
    (top, bottom), (left, right) = call["padding"]
    out_h = (call["x"][1] + top + bottom - kernel_h) // call["stride"] + 1
    out_w = (call["x"][2] + left + right - kernel_w) // call["stride"] + 1
    return 2.0 * batch * out_h * out_w * kernel_h * kernel_w * in_channels * out_channels
  # A transposed convolution is the adjoint of a convolution from its output to its input, with
  # the same multiply-adds: one per input pixel, tap and channel pair.
  return 2.0 * batch * call["x"][1] * call["x"][2] * kernel_h * kernel_w * in_channels * out_channels


def layer_formulations(call: dict, conv_formulations: list[str]) -> list[str]:
  """Returns the formulations to time for a layer: conv ones, or "transpose/conv" pairs."""
  if call["kind"] == "conv":
    return conv_formulations
  return [f"{transpose}/{conv}" for transpose in layers.TRANSPOSE_FORMULATIONS
          for conv in conv_formulations]


def time_call(call: dict, batch: int, dtype, formulation: str, repeats: int) -> float:
  """Returns the median seconds of forward + both gradients of the layer under `formulation`."""
  transpose_formulation, _, conv_formulation = formulation.rpartition("/")
  layers.set_conv_formulation(conv_formulation)
  if transpose_formulation:
    layers.set_transpose_formulation(transpose_formulation)
  x = jax.random.normal(jax.random.key(0), (batch, *call["x"][1:]), dtype)
  kernel = 0.02 * jax.random.normal(jax.random.key(1), call["kernel"], dtype)

  def forward(x, kernel):
    if call["kind"] == "conv":
      return layers._conv(x, kernel, call["stride"], call["padding"])  # pylint: disable=protected-access
    return layers.conv_transpose(x, kernel, call["stride"], call["padding"], call["output_hw"])

  @jax.jit
  def forward_backward(x, kernel):
    y, vjp = jax.vjp(forward, x, kernel)
    return vjp(y)

  jax.block_until_ready(forward_backward(x, kernel))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(forward_backward(x, kernel))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--arch", default="w7", choices=sorted(dcgan.ARCHITECTURES))
  parser.add_argument("--image_size", type=int, default=128)
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per layer")
  parser.add_argument("--formulations", default=",".join(layers.CONV_FORMULATIONS),
                      help="comma-separated names from layers.CONV_FORMULATIONS")
  parser.add_argument("--network", default="", choices=("", "G", "D"),
                      help="time only the layers of this network (empty = both)")
  args = parser.parse_args()

  formulations = args.formulations.split(",")
  unknown = sorted(set(formulations) - set(layers.CONV_FORMULATIONS))
  if unknown:
    sys.exit(f"error: unknown formulation(s) {unknown}; known: {sorted(layers.CONV_FORMULATIONS)}")
  dtype = jnp.dtype(args.dtype)
  totals = {}
  for index, call in enumerate(record_layers(args.arch, args.image_size, args.width)):
    if args.network and call["network"] != args.network:
      continue
    gflop = 3 * forward_flop(call, args.batch) / 1e9
    row = {"layer": index, "network": call["network"], "kind": call["kind"],
           "x": [args.batch, *call["x"][1:]], "kernel": list(call["kernel"]),
           "stride": call["stride"], "gflop_fwd_bwd": round(gflop, 2)}
    for formulation in layer_formulations(call, formulations):
      seconds = time_call(call, args.batch, dtype, formulation, args.repeats)
      totals[formulation] = totals.get(formulation, 0.0) + seconds
      row[f"{formulation}_s"] = round(seconds, 4)
      row[f"{formulation}_gflop_per_s"] = round(gflop / seconds, 1)
    print(json.dumps(row), flush=True)
  print(json.dumps({"total_s_per_formulation": {name: round(t, 3) for name, t in totals.items()},
                    "arch": args.arch, "image_size": args.image_size, "batch": args.batch,
                    "dtype": args.dtype}), flush=True)


if __name__ == "__main__":
  main()

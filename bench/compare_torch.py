"""Times jaxgan's DCGAN train step against the PyTorch reference, in alternating rounds.

    export JAXGAN_TORCH_PYTHON=/work/torchvenv/bin/python
    export JAXGAN_TORCH_REFERENCE=<path of torch_dcgan_ref.py>
    python bench/compare_torch.py --arch w7 --image_size 128 --batch 32 --rounds 3 --steps 2
    python bench/compare_torch.py --arch reproduct --dtype bfloat16

The PyTorch side runs the reference script (an eager PyTorch D-then-G iteration on synthetic
images) in a subprocess with the Python of a separate virtual environment, so torch is never
imported next to jaxgan. The jaxgan side compiles the step once in this process. Each round runs
`--steps` timed steps of jaxgan, then one PyTorch subprocess with `--steps` timed steps after one
untimed step, so a change in machine load affects both sides alike. Prints one JSON line per round
and a summary line with each side's median s/step and images/s over all rounds. The summary also
gives the speed of jaxgan relative to PyTorch (PyTorch s/step / jaxgan s/step, above 1 when
jaxgan is faster), over all steps and as the median of the per-round ratios.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import step as step_bench  # pylint: disable=wrong-import-position

# The jaxgan config with the training settings of each reference architecture.
CONFIGS = {"w7": "configs/w7_128.py", "reproduct": "configs/reproduct.py"}
TORCH_DTYPES = {"float32": "fp32", "bfloat16": "bf16"}


def run_torch(args: argparse.Namespace) -> dict:
  """Runs one round of the PyTorch reference; returns its JSON result."""
  command = [
      args.torch_python, args.torch_reference, "--arch", args.arch, "--image-size",
      str(args.image_size), "--batch", str(args.batch), "--steps", str(args.steps), "--warmup",
      "1", "--dtype", TORCH_DTYPES[args.dtype], "--device", "cpu",
  ]
  if args.torch_threads:
    command += ["--threads", str(args.torch_threads)]
  process = subprocess.run(command, capture_output=True, text=True, check=False)
  if process.returncode:
    raise SystemExit(f"error: the PyTorch reference failed (exit {process.returncode}): "
                     f"{' '.join(command)}\n{process.stderr[-2000:]}")
  lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
  if not lines:
    raise SystemExit(f"error: the PyTorch reference printed no JSON result: {' '.join(command)}")
  return json.loads(lines[-1])


def check_torch_paths(args: argparse.Namespace) -> None:
  if not args.torch_python or not os.access(args.torch_python, os.X_OK):
    raise SystemExit(
        f"error: PyTorch's Python {args.torch_python!r} is missing or not executable. Create a "
        "virtual environment with torch (python3 -m venv /work/torchvenv && "
        "/work/torchvenv/bin/pip install torch==2.13.0) and pass --torch_python or set "
        "JAXGAN_TORCH_PYTHON.")
  if not args.torch_reference or not os.path.isfile(args.torch_reference):
    raise SystemExit(
        f"error: the PyTorch reference script {args.torch_reference!r} was not found. Pass "
        "--torch_reference or set JAXGAN_TORCH_REFERENCE to the path of torch_dcgan_ref.py.")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--arch", default="w7", choices=sorted(CONFIGS))
  parser.add_argument("--image_size", type=int, default=128, help="image side in pixels")
  parser.add_argument("--batch", type=int, default=32, help="global batch")
  parser.add_argument("--dtype", default="float32", choices=sorted(TORCH_DTYPES),
                      help="compute dtype: config.model.dtype for jaxgan, autocast for PyTorch")
  parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
  parser.add_argument("--steps", type=int, default=2, help="timed steps per side and round")
  parser.add_argument("--formulation", default="", choices=["", *sorted(
      step_bench.layers.CONV_FORMULATIONS)], help="jaxgan's convolution formulation (empty = "
                      "its default)")
  parser.add_argument("--torch_python", default=os.environ.get("JAXGAN_TORCH_PYTHON", ""),
                      help="Python of the virtual environment with torch (default: "
                      "$JAXGAN_TORCH_PYTHON)")
  parser.add_argument("--torch_reference", default=os.environ.get("JAXGAN_TORCH_REFERENCE", ""),
                      help="path of the PyTorch reference script torch_dcgan_ref.py (default: "
                      "$JAXGAN_TORCH_REFERENCE)")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="PyTorch intra-op threads (0 = the reference's default, all cores)")
  args = parser.parse_args()
  if args.rounds < 1 or args.steps < 1:
    parser.error(f"--rounds and --steps must be >= 1, got {args.rounds} and {args.steps}")
  check_torch_paths(args)

  step_args = argparse.Namespace(
      config=CONFIGS[args.arch], batch=args.batch, image_size=args.image_size, dtype=args.dtype,
      formulation=args.formulation, stock_layers=False)
  config = step_bench.config_from_flags(step_args)
  bench = step_bench.StepBenchmark(config)
  bench.run(1)

  jax_times, torch_times, round_ratios = [], [], []
  for round_index in range(args.rounds):
    times = bench.run(args.steps)
    torch_result = run_torch(args)
    jax_times += times
    torch_times += torch_result["step_times_s"]
    ratio = torch_result["median_step_s"] / statistics.median(times)
    round_ratios.append(ratio)
    print(json.dumps({
        "round": round_index, "jaxgan_step_times_s": [round(t, 4) for t in times],
        "torch_step_times_s": torch_result["step_times_s"], "speed_vs_torch": round(ratio, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }), flush=True)

  jax_median, torch_median = statistics.median(jax_times), statistics.median(torch_times)
  print(json.dumps({
      "arch": args.arch, "image_size": args.image_size, "batch": args.batch, "dtype": args.dtype,
      "jaxgan_layers": step_bench.layers_name(step_args), "torch": torch_result["torch"],
      "torch_threads": torch_result["threads"], "rounds": args.rounds, "steps": args.steps,
      "jaxgan_s_per_step": round(jax_median, 4),
      "jaxgan_images_per_s": round(args.batch / jax_median, 2),
      "jaxgan_compile_s": round(bench.compile_s, 1),
      "torch_s_per_step": round(torch_median, 4),
      "torch_images_per_s": round(args.batch / torch_median, 2),
      "speed_vs_torch": round(torch_median / jax_median, 3),
      "median_round_speed_vs_torch": round(statistics.median(round_ratios), 3),
      "jaxgan_gflop_per_step_xla": round(bench.flop_per_step / 1e9, 1),
      "torch_gflop_per_step_estimate": torch_result["estimated_gflop_per_iteration"],
  }), flush=True)


if __name__ == "__main__":
  main()

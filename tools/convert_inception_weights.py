"""Converts pytorch-fid's FID Inception weights (.pth) to the .npz file that jaxgan reads.

    python tools/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth inception_fid.npz

The .pth file is published at jaxgan.evaluation.inception.PTH_URL. This script needs PyTorch;
jaxgan itself does not. The .npz keeps the state-dict names and PyTorch's array layouts (see
jaxgan/evaluation/inception.py), leaves out BatchNorm's `num_batches_tracked` counters, and is
checked by loading it into jaxgan's network. The script prints the SHA-256 of both files.
"""

import argparse
import hashlib
import sys

import numpy as np


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("pth", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
  parser.add_argument("npz", help="output .npz file")
  args = parser.parse_args()

  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    sys.stderr.write("Error: this converter needs PyTorch: pip install torch\n")
    return 2

  from jaxgan.evaluation import inception  # pylint: disable=g-import-not-at-top

  pth_hash = _sha256(args.pth)
  if not pth_hash.startswith(inception.PTH_SHA256_PREFIX):
    sys.stderr.write(
        f"Error: {args.pth} has SHA-256 {pth_hash}, which does not start with "
        f"{inception.PTH_SHA256_PREFIX}: it is not pytorch-fid's FID Inception file.\n")
    return 2
  state_dict = torch.load(args.pth, map_location="cpu", weights_only=True)
  arrays = {name: tensor.numpy() for name, tensor in state_dict.items()
            if not name.endswith("num_batches_tracked")}
  np.savez(args.npz, **arrays)
  inception.load(args.npz)
  print(f"{args.pth}: SHA-256 {pth_hash}")
  print(f"{args.npz}: SHA-256 {_sha256(args.npz)}, {len(arrays)} arrays")
  return 0


if __name__ == "__main__":
  sys.exit(main())

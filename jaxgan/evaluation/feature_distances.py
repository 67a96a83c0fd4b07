"""Distances between two sets of network features: the Fréchet distance (FID) and KID.

Both work on any [N, D] feature arrays, in float64. With Inception pool3 features (D = 2048) the
Fréchet distance is the FID and the kernel distance the KID.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class GaussianStatistics:
  """Mean [D] and covariance [D, D] of a feature set, with the number of samples behind them."""

  mean: np.ndarray
  covariance: np.ndarray
  count: int


def _check_features(features: np.ndarray, name: str, min_count: int) -> np.ndarray:
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2 or features.shape[0] < min_count:
    raise ValueError(
        f"expected {name} of shape [N, D] with N >= {min_count}, got shape {features.shape}")
  if not np.all(np.isfinite(features)):
    raise ValueError(f"{name} contain NaN or infinite values")
  return features


def gaussian_statistics(features: np.ndarray) -> GaussianStatistics:
  """Returns the mean and the unbiased (N - 1) covariance of features [N, D]."""
  features = _check_features(features, "features", 2)
  return GaussianStatistics(
      mean=features.mean(axis=0), covariance=np.cov(features, rowvar=False),
      count=features.shape[0])


def frechet_distance(first: GaussianStatistics, second: GaussianStatistics) -> float:
  """Returns |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) of two Gaussians.

  The trace of the matrix square root is taken as the sum of the square roots of the eigenvalues
  of S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2 but is symmetric positive
  semi-definite. This avoids the complex values and the failures of a general `sqrtm` when a
  covariance is singular, as it is whenever N <= D. Eigenvalues that rounding makes slightly
  negative are clipped to 0.
  """
  if first.mean.shape != second.mean.shape:
    raise ValueError(
        f"feature sizes differ: {first.mean.shape[0]} and {second.mean.shape[0]}")
  sigma1 = np.asarray(first.covariance, dtype=np.float64)
  sigma2 = np.asarray(second.covariance, dtype=np.float64)
  difference = np.asarray(first.mean, np.float64) - np.asarray(second.mean, np.float64)

  eigenvalues, eigenvectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
  sqrt_sigma1 = (eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))) @ eigenvectors.T
  product = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
  product_eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
  trace_sqrt = np.sum(np.sqrt(np.maximum(product_eigenvalues, 0.0)))

  distance = difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
  # The exact value is >= 0; rounding can give a tiny negative number for equal statistics.
  return float(max(distance, 0.0))


@dataclasses.dataclass(frozen=True)
class KernelDistance:
  """KID: the mean and standard deviation of the unbiased MMD^2 estimate over random subsets."""

  mean: float
  std: float
  subset_size: int
  num_subsets: int


def polynomial_kernel(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """Returns k(x, y) = (x.y / D + 1)^3 for all pairs of rows, the kernel of KID."""
  dimension = first.shape[1]
  return (first @ second.T / dimension + 1.0) ** 3


def unbiased_mmd2(first: np.ndarray, second: np.ndarray) -> float:
  """Returns the unbiased estimate of MMD^2 under `polynomial_kernel` from two samples.

  The within-set terms leave out the diagonal (k(x, x)), which is what makes the estimate
  unbiased, so it can be negative when the two distributions are equal.
  """
  m, n = first.shape[0], second.shape[0]
  k_xx = polynomial_kernel(first, first)
  k_yy = polynomial_kernel(second, second)
  k_xy = polynomial_kernel(first, second)
  within_first = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
  within_second = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
  return float(within_first + within_second - 2.0 * k_xy.mean())


def kernel_distance(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    subset_size: int = 1000,
    num_subsets: int = 100,
    seed: int = 0,
) -> KernelDistance:
  """Returns KID between feature sets [N, D] and [M, D]: unbiased MMD^2 averaged over subsets.

  Each subset draws `subset_size` rows of each set without replacement, where `subset_size` is
  lowered to min(N, M) when the sets are smaller. The subsets come from a NumPy generator
  seeded with `seed`, so the result is reproducible.
  """
  real = _check_features(real, "real features", 2)
  fake = _check_features(fake, "fake features", 2)
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"feature sizes differ: {real.shape[1]} and {fake.shape[1]}")
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be at least 1, got {num_subsets}")
  size = min(subset_size, real.shape[0], fake.shape[0])
  if size < 2:
    raise ValueError(f"subset_size must be at least 2, got {size}")

  rng = np.random.default_rng(seed)
  estimates = []
  for _ in range(num_subsets):
    real_subset = real[rng.choice(real.shape[0], size, replace=False)]
    fake_subset = fake[rng.choice(fake.shape[0], size, replace=False)]
    estimates.append(unbiased_mmd2(real_subset, fake_subset))
  return KernelDistance(
      mean=float(np.mean(estimates)), std=float(np.std(estimates)), subset_size=size,
      num_subsets=num_subsets)

"""Optional image preprocessing for SDPC: z-score, local contrast normalisation, whitening, mask.

A GAN fusion that must output viewable images should train SDPC on images as the GAN receives them,
so every step is off by default.
"""


import jax
import jax.numpy as jnp
import numpy as np

STEPS = ("zscore", "lcn", "whiten", "mask")


def zscore(images: jax.Array) -> jax.Array:
  """Scales each image [B, H, W, C] to mean 0 and standard deviation 1 over all its values."""
  mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
  std = jnp.std(images, axis=(1, 2, 3), keepdims=True)
  return (images - mean) / jnp.maximum(std, 1e-6)


def _gaussian_blur(images: jax.Array, size: int, sigma: float) -> jax.Array:
  offsets = np.arange(size) - (size - 1) / 2
  kernel_1d = np.exp(-offsets**2 / (2 * sigma**2))
  kernel = np.outer(kernel_1d, kernel_1d)
  kernel = kernel / kernel.sum()
  channels = images.shape[-1]
  weights = jnp.asarray(np.tile(kernel[:, :, None, None], (1, 1, 1, channels)), images.dtype)
  return jax.lax.conv_general_dilated(
      images, weights, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=channels)


def local_contrast_normalize(images: jax.Array, size: int = 9) -> jax.Array:
  """Subtracts the Gaussian-weighted local mean and divides by the local standard deviation.

  The divisor is floored at the image's mean local standard deviation, so flat regions are not
  amplified into noise. The Gaussian has a standard deviation of size / 4 pixels.
  """
  centered = images - _gaussian_blur(images, size, size / 4)
  local_std = jnp.sqrt(_gaussian_blur(centered**2, size, size / 4))
  floor = jnp.mean(local_std, axis=(1, 2, 3), keepdims=True)
  return centered / jnp.maximum(local_std, jnp.maximum(floor, 1e-6))


def whiten(images: jax.Array, f0: float = 0.5, order: int = 2) -> jax.Array:
  """Filters each channel with f * exp(-(f / f0)^order) in the Fourier domain.

  f is the radial frequency in cycles per pixel (0 to 0.5 on each axis): the ramp flattens the
  roughly 1/f spectrum of natural images and the exponential damps the highest frequencies.
  """
  height, width = images.shape[1:3]
  fy = np.fft.fftfreq(height)[:, None]
  fx = np.fft.fftfreq(width)[None, :]
  radius = np.sqrt(fx**2 + fy**2)
  gain = jnp.asarray(radius * np.exp(-((radius / f0) ** order)), images.dtype)
  spectrum = jnp.fft.fft2(images, axes=(1, 2))
  return jnp.real(jnp.fft.ifft2(spectrum * gain[None, :, :, None], axes=(1, 2))).astype(
      images.dtype)


def border_mask(images: jax.Array) -> jax.Array:
  """Multiplies by (1 - |x|^10)(1 - |y|^10) with x and y in [-1, 1], fading the borders to 0."""
  height, width = images.shape[1:3]
  y = np.linspace(-1, 1, height)[:, None]
  x = np.linspace(-1, 1, width)[None, :]
  mask = (1 - np.abs(x) ** 10) * (1 - np.abs(y) ** 10)
  return images * jnp.asarray(mask, images.dtype)[None, :, :, None]


_FUNCTIONS = {"zscore": zscore, "lcn": local_contrast_normalize, "whiten": whiten,
              "mask": border_mask}


def parse(steps: str) -> tuple[str, ...]:
  """Splits a comma-separated list of steps; raises ValueError naming an unknown step."""
  names = tuple(name.strip() for name in steps.split(",") if name.strip())
  unknown = [name for name in names if name not in _FUNCTIONS]
  if unknown:
    raise ValueError(f"unknown preprocessing step(s) {', '.join(unknown)}; the steps are "
                     f"{', '.join(STEPS)}")
  return names


def apply(images: jax.Array, steps: tuple[str, ...]) -> jax.Array:
  """Applies the named steps in order."""
  for name in steps:
    images = _FUNCTIONS[name](images)
  return images

"""A small CNN that classifies labelled real images, trained on the CPU and cached on disk.

The class_accuracy metric uses it to check whether a generated image of a conditional run
shows the class it was conditioned on. It needs no
downloaded weights. Its accuracy on held-out real images bounds what the metric can show.
"""

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from jaxgan.evaluation import batching

# Bumped when the network or training changes, so that older cache files are not reused.
FORMAT_VERSION = 1
AUGMENTATION = "random horizontal flip, random shift up to 2 px (edge padding)"
_MAX_SHIFT = 2


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
  """Network and training settings. A change to any of them trains a new classifier.

  Attributes:
    widths: output channels of the 3x3 convolutions, one per entry. The first keeps the
      resolution and each later one halves it (stride 2).
    epochs: passes over the training images.
    batch_size: images per Adam step.
    learning_rate: Adam learning rate.
    seed: seed of the initialization, the batch order and the augmentation.
  """

  widths: tuple[int, ...] = (16, 32, 64, 128)
  epochs: int = 10
  batch_size: int = 64
  learning_rate: float = 2e-3
  seed: int = 0

  def to_dict(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "widths": list(self.widths),
            "augmentation": AUGMENTATION, "format_version": FORMAT_VERSION}


class ClassifierNet(nnx.Module):
  """Convolutions with ReLU, then one linear layer on the flattened features: logits [N, K]."""

  def __init__(self, num_classes: int, image_size: int, widths: tuple[int, ...], *,
               rngs: nnx.Rngs):
    channels = (3,) + tuple(widths)
    self.convs = nnx.List([
        nnx.Conv(channels[i], channels[i + 1], (3, 3), strides=1 if i == 0 else 2,
                 padding="SAME", rngs=rngs)
        for i in range(len(widths))])
    size = image_size
    for _ in range(len(widths) - 1):
      size = -(-size // 2)  # SAME padding with stride 2 rounds up
    self.head = nnx.Linear(size * size * channels[-1], num_classes, rngs=rngs)

  def __call__(self, images: jax.Array) -> jax.Array:
    """Returns logits for images [N, S, S, 3] in [-1, 1]."""
    x = images
    for conv in self.convs:
      x = jax.nn.relu(conv(x))
    return self.head(x.reshape(x.shape[0], -1))


def _scale(images: jax.Array) -> jax.Array:
  return images.astype(jnp.float32) / 127.5 - 1.0


def _augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Flips each uint8 image left-right with probability 0.5 and shifts it by up to _MAX_SHIFT
  pixels in each direction."""
  flip = rng.random(len(images)) < 0.5
  images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
  padded = np.pad(images, ((0, 0), (_MAX_SHIFT,) * 2, (_MAX_SHIFT,) * 2, (0, 0)), mode="edge")
  size = images.shape[1]
  offsets = rng.integers(0, 2 * _MAX_SHIFT + 1, (len(images), 2))
  return np.stack([padded[i, dy:dy + size, dx:dx + size]
                   for i, (dy, dx) in enumerate(offsets)])


class Classifier:
  """A trained ClassifierNet that predicts labels of uint8 images in fixed-size batches."""

  def __init__(self, model: ClassifierNet, batch_size: int = 256):
    self.batch_size = batch_size
    graphdef, self.params = nnx.split(model)

    @jax.jit
    def logits(params, images):
      return nnx.merge(graphdef, params)(_scale(images))

    self._logits = logits

  def predict(self, images: np.ndarray) -> np.ndarray:
    """Returns int32 predicted labels [N] of uint8 images [N, S, S, 3]."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(f"expected uint8 images [N, S, S, 3], got {images.dtype} {images.shape}")
    logits = batching.apply_in_batches(
        lambda batch: self._logits(self.params, batch), images, self.batch_size)
    return np.argmax(logits, axis=-1).astype(np.int32)


def train(images: np.ndarray, labels: np.ndarray, num_classes: int,
          settings: ClassifierSettings) -> Classifier:
  """Trains a ClassifierNet with Adam on uint8 images [N, S, S, 3] and int labels [N].

  Each epoch shuffles the images and drops the last partial batch, so every step has the same
  shape and compiles once. Fewer images than settings.batch_size make one batch of all.
  """
  rng = np.random.default_rng(settings.seed)
  model = ClassifierNet(num_classes, images.shape[1], settings.widths,
                        rngs=nnx.Rngs(settings.seed))
  graphdef, params = nnx.split(model)
  optimizer = optax.adam(settings.learning_rate)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch_images, batch_labels):
    def loss_fn(p):
      logits = nnx.merge(graphdef, p)(_scale(batch_images))
      return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  batch_size = min(settings.batch_size, len(images))
  steps_per_epoch = len(images) // batch_size
  start = time.time()
  for epoch in range(settings.epochs):
    order = rng.permutation(len(images))
    losses = []
    for index in range(steps_per_epoch):
      chosen = order[index * batch_size:(index + 1) * batch_size]
      params, opt_state, loss = step(params, opt_state, _augment(images[chosen], rng),
                                     labels[chosen])
      losses.append(loss)
    logging.info("Classifier epoch %d/%d: mean loss %.4f (%.0f s)", epoch + 1, settings.epochs,
                 float(np.mean(losses)), time.time() - start)
  return Classifier(nnx.merge(graphdef, params))


def accuracy_by_class(true_labels: np.ndarray, predicted: np.ndarray,
                      num_classes: int) -> tuple[float, np.ndarray, np.ndarray]:
  """Returns (overall accuracy, accuracy of each true class, confusion matrix).

  confusion[i, j] counts images of true class i predicted as j. A class without images has
  accuracy NaN.
  """
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (np.asarray(true_labels), np.asarray(predicted)), 1)
  counts = confusion.sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_class = np.diag(confusion) / counts
  overall = float(np.trace(confusion) / max(counts.sum(), 1))
  return overall, per_class, confusion


def _flat_parameters(model_or_params: Any) -> dict[str, np.ndarray]:
  state = model_or_params if isinstance(model_or_params, nnx.State) else nnx.state(
      model_or_params)
  return {"/".join(map(str, path)): np.asarray(variable.get_value())
          for path, variable in nnx.to_flat_state(state)}


def parameters_sha256(classifier: Classifier) -> str:
  """Returns a SHA-256 of the classifier's parameters, in path order."""
  digest = hashlib.sha256()
  for name, value in sorted(_flat_parameters(classifier.params).items()):
    digest.update(name.encode())
    digest.update(np.ascontiguousarray(value, np.float32).tobytes())
  return digest.hexdigest()


def save(classifier: Classifier, path: str) -> None:
  """Writes the parameters to the .npz file `path` atomically."""
  temporary = path + ".tmp.npz"
  np.savez(temporary, **_flat_parameters(classifier.params))
  os.replace(temporary, path)


def load(path: str, num_classes: int, image_size: int,
         settings: ClassifierSettings) -> Classifier:
  """Reads parameters that `save` wrote into a ClassifierNet built with `settings`."""
  abstract = nnx.eval_shape(
      lambda: ClassifierNet(num_classes, image_size, settings.widths, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(abstract)
  leaves = []
  with np.load(path) as arrays:
    for state_path, variable in nnx.to_flat_state(state):
      value = jnp.asarray(arrays["/".join(map(str, state_path))])
      leaves.append((state_path, variable.replace(value=value)))
  return Classifier(nnx.merge(graphdef, nnx.from_flat_state(leaves)))


def write_json(data: dict[str, Any], path: str) -> None:
  """Writes `data` to `path` as JSON atomically."""
  temporary = path + ".tmp"
  with open(temporary, "w") as f:
    json.dump(data, f, indent=2, sort_keys=True)
  os.replace(temporary, path)

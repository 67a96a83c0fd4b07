"""TensorFlow import for the input pipeline, with accelerators hidden from it."""

from absl import logging


def import_tensorflow():
  """Imports TensorFlow with GPUs and TPUs hidden, because JAX needs all of their memory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")
  except (RuntimeError, ValueError):
    # RuntimeError: TensorFlow was already initialized, so its device list can no longer change.
    # ValueError: this TensorFlow build has no TPU device type.
    if tf.config.get_visible_devices("GPU"):
      logging.warning(
          "TensorFlow was initialized before jaxgan could hide the GPUs from it, so it may "
          "reserve GPU memory that JAX needs.")
  return tf

"""Names of the evaluation metrics and their parser, importable without JAX for config checks."""

from jaxgan.errors import JaxganError

METRICS = ("swd", "diversity", "nn", "fid", "kid")
INCEPTION_METRICS = ("fid", "kid")
# Metrics that can select the best checkpoint; lower values are better for each.
RANKING_METRICS = ("swd", "fid", "kid")
# Needs a conditional run and trains a classifier, so only python -m jaxgan.evaluate offers it,
# not periodic evaluation during training.
CLASS_ACCURACY = "class_accuracy"


class EvaluationError(JaxganError):
  """Invalid evaluation request: unknown metric, too few images."""


def parse_metrics(text: str, allowed: tuple[str, ...] = METRICS) -> list[str]:
  """Parses "swd,diversity" into a list of metric names; raises EvaluationError if not in
  `allowed`."""
  names = [name.strip() for name in str(text).split(",") if name.strip()]
  unknown = [name for name in names if name not in allowed]
  if unknown or not names:
    raise EvaluationError(
        f"Invalid metrics {text!r}: each must be one of {', '.join(allowed)}, separated by "
        "commas, for example swd,diversity.")
  return list(dict.fromkeys(names))

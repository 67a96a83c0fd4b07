"""Command line of the comparison report; see jaxgan.report for what the page shows.

    python -m jaxgan.report runs/a runs/b --out report/ [--epochs 10,50,100] [--title T]

Exit status: 0 when the report was written, 2 for bad input (a path that is not a workdir, a
malformed --epochs), 1 for anything unexpected.
"""

import argparse

from absl import logging

from jaxgan import cli
from jaxgan import report


def _epoch_list(text: str) -> list[int]:
  """Parses "10,50,100" into positive epoch numbers."""
  try:
    epochs = [int(part) for part in text.split(",") if part.strip()]
  except ValueError:
    epochs = []
  if not epochs or any(epoch < 1 for epoch in epochs):
    raise argparse.ArgumentTypeError(
        f"invalid --epochs {text!r}: expected comma-separated epoch numbers >= 1, such as "
        "10,50,100")
  return epochs


def make_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m jaxgan.report",
      description="Compare training runs in one self-contained HTML page and a Markdown twin.")
  parser.add_argument("runs", nargs="+", metavar="RUN",
                      help="workdir of python -m jaxgan.main (one or more)")
  parser.add_argument("--out", required=True,
                      help="output folder for report.html, report.md and images/")
  parser.add_argument("--epochs", type=_epoch_list, default=None,
                      help="comma-separated epochs whose sample grids are shown (default: a few "
                           "evenly spaced epochs and each run's last grid)")
  parser.add_argument("--title", default=None, help="page title (default: the run names)")
  return parser


def main(arguments: argparse.Namespace) -> None:
  html_path = report.build_report(arguments.runs, arguments.out, arguments.epochs,
                                  arguments.title)
  logging.info("Wrote the report of %d run(s) to %s", len(arguments.runs), html_path.parent)
  print(html_path)
  print(html_path.parent / report.MARKDOWN_FILE)


if __name__ == "__main__":
  cli.run(main, make_parser().parse_args)

"""A small document model with two renderers: self-contained HTML and Markdown.

The report builds one list of blocks and renders it twice, so the HTML page and its Markdown twin
show the same content. HTML embeds every image as a base64 data URI and makes no external request;
Markdown links the image files by their path relative to the output folder.
"""

import base64
import dataclasses
import html
import pathlib
from collections.abc import Sequence

_MIME_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg",
               ".jpeg": "image/jpeg"}


@dataclasses.dataclass
class Image:
  """An image file inside the output folder, with its alternative text and an optional caption."""

  path: pathlib.Path
  alt: str
  caption: str = ""
  # "grid" shows the image 400 pixels wide, scaling small sample grids up without blurring.
  css_class: str = ""


@dataclasses.dataclass
class Heading:
  text: str
  level: int = 2


@dataclasses.dataclass
class Paragraph:
  text: str


@dataclasses.dataclass
class BulletList:
  items: list[str]


# A table cell: text, or an image (with its caption under it).
Cell = str | Image


@dataclasses.dataclass
class Table:
  header: list[str]
  rows: list[list[Cell]]


@dataclasses.dataclass
class Details:
  """A collapsed section in HTML (<details>); Markdown shows its blocks under the summary."""

  summary: str
  blocks: list


Block = Heading | Paragraph | BulletList | Table | Image | Details

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
img.grid { width: 400px; max-width: none; image-rendering: pixelated; }
figure { margin: 0.5em 0 1.2em; }
figcaption, .caption { font-size: 0.85em; color: #555; }
.gap { color: #a33; }
"""


def to_html(title: str, blocks: Sequence[Block], out_dir: pathlib.Path) -> str:
  """Renders `blocks` as one HTML page with every image embedded from `out_dir`."""
  parts = [
      "<!DOCTYPE html>",
      '<html lang="en"><head><meta charset="utf-8">',
      # An empty icon keeps the browser from requesting /favicon.ico.
      '<link rel="icon" href="data:,">',
      f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
      f"<h1>{html.escape(title)}</h1>",
  ]
  parts += [_html_block(block, out_dir) for block in blocks]
  parts.append("</body></html>")
  return "\n".join(parts) + "\n"


def _data_uri(path: pathlib.Path) -> str:
  mime = _MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")
  return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_image(image: Image, out_dir: pathlib.Path) -> str:
  css = f' class="{image.css_class}"' if image.css_class else ""
  tag = f'<img src="{_data_uri(out_dir / image.path)}" alt="{html.escape(image.alt)}"{css}>'
  if not image.caption:
    return tag
  return f'{tag}<div class="caption">{html.escape(image.caption)}</div>'


def _html_cell(cell: Cell, out_dir: pathlib.Path) -> str:
  if isinstance(cell, Image):
    return f"<td>{_html_image(cell, out_dir)}</td>"
  css = ' class="number"' if _is_number(cell) else ""
  return f"<td{css}>{html.escape(cell)}</td>"


def _is_number(text: str) -> bool:
  try:
    float(text.replace(",", ""))
  except ValueError:
    return False
  return True


def _html_block(block: Block, out_dir: pathlib.Path) -> str:
  if isinstance(block, Heading):
    return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
  if isinstance(block, Paragraph):
    return f"<p>{html.escape(block.text)}</p>"
  if isinstance(block, BulletList):
    items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
    return f"<ul>{items}</ul>"
  if isinstance(block, Table):
    header = "".join(f"<th>{html.escape(text)}</th>" for text in block.header)
    rows = "".join(
        "<tr>" + "".join(_html_cell(cell, out_dir) for cell in row) + "</tr>"
        for row in block.rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"
  if isinstance(block, Image):
    caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
    image = Image(block.path, block.alt, css_class=block.css_class)
    return f"<figure>{_html_image(image, out_dir)}{caption}</figure>"
  if isinstance(block, Details):
    inner = "\n".join(_html_block(child, out_dir) for child in block.blocks)
    return f"<details><summary>{html.escape(block.summary)}</summary>\n{inner}\n</details>"
  raise TypeError(f"unknown block type {type(block).__name__}")


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
  """Renders `blocks` as Markdown whose images are paths relative to the output folder."""
  parts = [f"# {_markdown_text(title)}"]
  parts += [_markdown_block(block) for block in blocks]
  return "\n\n".join(parts) + "\n"


def _markdown_text(text: str) -> str:
  """Escapes the characters that would start Markdown markup inside ordinary text.

  Underscores stay as they are: config keys such as optim.lr_d are intraword, where GitHub
  Markdown starts no emphasis.
  """
  for character in "\\`*[]<>|":
    text = text.replace(character, "\\" + character)
  return text


def _markdown_image(image: Image) -> str:
  alt = image.alt.replace("[", "").replace("]", "")
  return f"![{alt}]({image.path.as_posix()})"


def _markdown_cell(cell: Cell) -> str:
  if isinstance(cell, Image):
    text = _markdown_image(cell)
    return f"{text}<br>{_markdown_text(cell.caption)}" if cell.caption else text
  return _markdown_text(cell).replace("\n", " ")


def _markdown_block(block: Block) -> str:
  if isinstance(block, Heading):
    return f"{'#' * block.level} {_markdown_text(block.text)}"
  if isinstance(block, Paragraph):
    return _markdown_text(block.text)
  if isinstance(block, BulletList):
    return "\n".join(f"- {_markdown_text(item)}" for item in block.items)
  if isinstance(block, Table):
    lines = ["| " + " | ".join(_markdown_text(text) for text in block.header) + " |",
             "|" + "---|" * len(block.header)]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |"
              for row in block.rows]
    return "\n".join(lines)
  if isinstance(block, Image):
    text = _markdown_image(block)
    return f"{text}\n\n{_markdown_text(block.caption)}" if block.caption else text
  if isinstance(block, Details):
    inner = "\n\n".join(_markdown_block(child) for child in block.blocks)
    return f"**{_markdown_text(block.summary)}**\n\n{inner}"
  raise TypeError(f"unknown block type {type(block).__name__}")

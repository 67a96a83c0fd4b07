"""Renders a local HTML page in headless Chromium (Debian's chromium and chromium-driver packages).

Selenium drives the system chromedriver at CHROMEDRIVER, never a downloaded one. `unavailable()`
returns why the browser cannot run here, so that tests skip with that reason.
"""

import base64
import dataclasses
import os
import pathlib
import shutil

CHROMEDRIVER = os.environ.get("JAXGAN_CHROMEDRIVER", "/usr/bin/chromedriver")
_BROWSER_NAMES = ("chromium", "chromium-browser")
_WINDOW_WIDTH = 1400


@dataclasses.dataclass
class Rendered:
  """What the browser saw: every <img> (alt text, complete flag, naturalWidth), console errors."""

  images: list[tuple[str, bool, int]]
  console_errors: list[str]


def browser_binary() -> str | None:
  for name in _BROWSER_NAMES:
    path = shutil.which(name)
    if path:
      return path
  return None


def unavailable() -> str | None:
  """Returns the reason headless Chromium cannot run here, or None when it can."""
  try:
    import selenium  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return "selenium is not installed (pip install -e '.[test]')"
  if browser_binary() is None:
    return "no chromium binary on PATH (apt-get install chromium chromium-driver)"
  if not os.access(CHROMEDRIVER, os.X_OK):
    return f"no chromedriver at {CHROMEDRIVER} (apt-get install chromium-driver)"
  return None


def render(page: pathlib.Path, screenshot: pathlib.Path, timeout_s: float = 60) -> Rendered:
  """Loads `page`, waits for its images, and saves a full-page PNG screenshot to `screenshot`."""
  # Imported here so that the module imports where selenium is absent and tests can skip.
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top

  options = webdriver.ChromeOptions()
  options.binary_location = browser_binary()
  for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   f"--window-size={_WINDOW_WIDTH},1000", "--no-first-run"):
    options.add_argument(argument)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  # With the driver path given, Selenium Manager is not run (selenium 4.51, driver_finder.py), so
  # nothing is downloaded.
  driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
  try:
    driver.set_page_load_timeout(timeout_s)
    driver.get(page.absolute().as_uri())
    WebDriverWait(driver, timeout_s).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && "
        "Array.from(document.images).every(i => i.complete)"))
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);")
    errors = [entry["message"] for entry in driver.get_log("browser")
              if entry.get("level") == "SEVERE"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
  finally:
    driver.quit()
  return Rendered(images=[tuple(image) for image in images], console_errors=errors)

"""Errors that end a run with a clear message and exit status 2, never a traceback."""


class JaxganError(Exception):
  """An error caused by the user's input: a config value, a data folder, an image file.

  `jaxgan.main` catches it, logs the message and exits with status 2. The message must name the
  offending value and state the fix.
  """


class ConfigError(JaxganError):
  """An invalid or inconsistent config value."""


class DataError(JaxganError):
  """A data source that cannot provide the images a run needs."""

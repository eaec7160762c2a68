"""NightOps host: configuration, state stores, the composition root and the CLI.

Import what you need from the submodules (``nightops.config``, ``nightops.app``); importing
this package does nothing else.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nightops")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

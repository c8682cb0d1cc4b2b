"""The one error the configuration layer raises: a bad setting, file or line, named for the administrator."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem found at start-up; the message names file, line and expectation."""

"""The one error type of configuration problems (shared by the config loader and its helpers)."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem; the message names the key (dotted path) and the fix."""

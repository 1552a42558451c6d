"""Errors of the memories library.

Every error names the input that caused it and the fix, so a user can act on it
without reading the code.
"""

from __future__ import annotations


class MemoriesError(Exception):
    """Base class of every error raised by the memories library."""


class ConfigError(MemoriesError, ValueError):
    """A configuration value is missing or invalid."""


class DataSourceError(MemoriesError):
    """A data source (STAC API, file, object store) failed or returned bad data."""


class ProcessingError(MemoriesError):
    """A processing step could not produce a valid result from valid inputs."""


class StorageError(MemoriesError):
    """Reading or writing the storage root failed."""


class MissingDataError(MemoriesError, LookupError):
    """The memory holds no data for the asked place, period or transaction time."""


class ModelError(MemoriesError):
    """A model version is missing, incompatible with its input, or failed."""


class AuthenticationError(MemoriesError):
    """A request carried no valid credentials (token, key)."""

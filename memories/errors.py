"""Errors of the memories library.

Every error names the input that caused it and the fix, so a user can act on it
without reading the code. All of them derive from :class:`MemoriesError`, so
``except MemoriesError`` catches everything the library raises on purpose; some
also derive from the built-in a caller would expect (``ConfigError`` is a
``ValueError``, ``MissingDataError`` a ``LookupError``, ``TaskTimeoutError`` a
``TimeoutError``).

=====================  ==================  ===============================================================
error                  also a              raised when
=====================  ==================  ===============================================================
``MemoriesError``      ``Exception``       (base class; never raised itself)
``ConfigError``        ``ValueError``      a setting, option or argument is missing or invalid
``DataSourceError``                        a STAC API, file or object store failed or returned bad data
``ProcessingError``                        a step could not make a valid result from valid inputs
``StorageError``                           reading or writing the storage root failed
``MissingDataError``   ``LookupError``     the memory holds nothing for that place, period or ``as_of``
``ModelError``                             a model version is missing, incompatible with its input, or failed
``AuthenticationError``                    a request carried no valid token or key
``ConcurrencyError``   ``RuntimeError``    a task pool was misused (work after close, a bad bound)
``TaskTimeoutError``   ``TimeoutError``    tasks did not finish in the time allowed (a ``ConcurrencyError``)
=====================  ==================  ===============================================================

Modules may refine these (``memories.ai.registry.ModelNotFoundError`` is a
``StorageError`` and a ``LookupError``). Pydantic validators raise ``ValueError``
as pydantic requires; the library turns those into ``ConfigError``.
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


class ConcurrencyError(MemoriesError, RuntimeError):
    """A task pool was used wrongly: work submitted after it was closed, or a bad bound."""


class TaskTimeoutError(ConcurrencyError, TimeoutError):
    """Tasks did not finish within the time a caller allowed; the ones not yet started were cancelled."""

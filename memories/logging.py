"""The seed's logger: ``from memories.logging import logger``.

``logger`` is the ``memories`` logger, the parent of every module's logger
(``memories.earth.fetch``...), so it follows the one policy of :mod:`memories.logs`:
the library logs and never adds handlers or sets levels. Where the lines go is the
program's choice; a notebook or script that wants them on stderr calls
:func:`~memories.logs.configure` once::

    from memories.logging import logger
    from memories.logs import configure

    configure("INFO")   # 2026-12-02T01:14:07Z INFO memories: General information about operation
    logger.info("General information about operation")
"""

from __future__ import annotations

import logging as _logging

from memories.logs import configure

__all__ = ["configure", "logger"]

logger: _logging.Logger = _logging.getLogger("memories")
"""The library's root logger (``logging.getLogger("memories")``)."""

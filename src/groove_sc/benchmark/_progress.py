"""Progress of a benchmark: the ``groove_sc.benchmark`` logger and what ``progress=True`` shows.

Progress lines are ``INFO`` records of the ``groove_sc.benchmark`` logger. An application
routes them as it routes any log (``logging.basicConfig(level=logging.INFO)`` shows them
all); ``progress=True`` makes sure they are seen without any logging set up, as scanpy's
functions print their progress: for the duration of the call the logger passes ``INFO``
records on and, when no handler is configured anywhere on its way to the root logger, writes
them to standard output as ``[groove-sc benchmark] <message>``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

#: The benchmark's logger: every progress line is an ``INFO`` record of it.
logger = logging.getLogger("groove_sc.benchmark")
#: Format of the lines ``progress=True`` and ``groove-sc benchmark`` write.
PROGRESS_FORMAT = "[groove-sc benchmark] %(message)s"


def stdout_handler() -> logging.Handler:
    """A handler writing progress lines to the current standard output.

    Examples
    --------
    >>> stdout_handler().formatter._fmt
    '[groove-sc benchmark] %(message)s'

    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(PROGRESS_FORMAT))
    return handler


@contextlib.contextmanager
def show_progress(enabled: bool = True) -> Iterator[None]:
    """Within the block, progress is shown (see the module docstring); nothing if not ``enabled``.

    Examples
    --------
    >>> import logging
    >>> with show_progress():
    ...     logger.isEnabledFor(logging.INFO)
    True

    """
    if not enabled:
        yield
        return
    level = logger.level
    handler = None if logger.hasHandlers() else stdout_handler()
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    if handler is not None:
        logger.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(level)

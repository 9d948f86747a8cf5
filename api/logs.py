"""gridmap's own log lines (loggers ``gridmap.*``) on stderr, with time, level and process.

Uvicorn configures its own loggers only. Without a handler of ours, Python printed
gridmap's warnings bare (no time, no level, no process: a soak's dropped connections could
not be told from other lines) and dropped its INFO lines: which partition was created,
which process leads a job, when a boundary version came into force.

Nothing is added when the root logger already has a handler: whoever configured logging
(an operator's ``--log-config``, pytest's capture) receives gridmap's records through it.
"""

from __future__ import annotations

import logging
from typing import Final

HANDLER_NAME: Final = "gridmap-stderr"
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(level: str) -> None:
    """Set gridmap's level; print its records on stderr unless logging is set up already."""
    logger = logging.getLogger("gridmap")
    logger.setLevel(level.upper())
    if logging.getLogger().handlers or any(h.get_name() == HANDLER_NAME for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)

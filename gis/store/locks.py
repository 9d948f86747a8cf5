"""PostgreSQL advisory locks that let several server processes share one duty.

A lock is named by a string (a job name); :func:`lock_key` turns it into the 32-bit key
PostgreSQL takes, so the same name means the same lock in every process and on every
machine that uses the database. Two namespaces keep the kinds of lock apart: a process
that *leads* a job holds a session-level lock in :data:`LEADER_NAMESPACE` for as long as
it leads, and each run of the job holds a transaction-level lock in :data:`RUN_NAMESPACE`
until its transaction ends, so two runs never overlap even while leadership changes hands.
"""

from __future__ import annotations

import hashlib
from typing import Final

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

#: First key of the two-key advisory locks: who leads a periodic job.
LEADER_NAMESPACE: Final = 0x67726D31  # "grm1"
#: First key of the two-key advisory locks: one run of a periodic job.
RUN_NAMESPACE: Final = 0x67726D32  # "grm2"


def lock_key(name: str) -> int:
    """A stable signed 32-bit key for ``name`` (PostgreSQL's ``int4``).

    >>> lock_key("boundary activation") == lock_key("boundary activation")
    True
    >>> -(2**31) <= lock_key("overdue flagging") < 2**31
    True
    """
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def try_run_lock(session: Session, name: str) -> bool:
    """Take the run lock of ``name`` for this transaction, without waiting.

    False when another transaction holds it. The lock ends with the transaction, whether it
    commits or rolls back, so a crashed run never leaves it behind.
    """
    return bool(
        session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
            {"ns": RUN_NAMESPACE, "key": lock_key(name)},
        )
    )


def try_lead(connection: Connection, name: str) -> bool:
    """Take the leader lock of ``name`` on this connection, without waiting.

    The lock lasts until :func:`stop_leading` or until the connection closes (the process
    ends, the database restarts), so another process takes over when the leader is gone.
    Call it only while not leading: each success must be matched by one release.
    """
    held = bool(
        connection.scalar(
            text("SELECT pg_try_advisory_lock(:ns, :key)"),
            {"ns": LEADER_NAMESPACE, "key": lock_key(name)},
        )
    )
    connection.commit()
    return held


def stop_leading(connection: Connection, name: str) -> None:
    """Release the leader lock of ``name`` held on this connection."""
    connection.execute(
        text("SELECT pg_advisory_unlock(:ns, :key)"),
        {"ns": LEADER_NAMESPACE, "key": lock_key(name)},
    )
    connection.commit()

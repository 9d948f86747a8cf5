"""The closed loop's transition table: which action may start where, lead where, taken by whom.

Pure: no database, no HTTP. The service layer (``services/workflow.py``) locks the event,
asks this module whether the caller may take the action now, and writes what it answers.
The API tells three refusals apart, and this module gives each its own question:

* :func:`role_may_take` — may this *role* ever take the action? No: 403.
* :func:`allowed_actions` — what may this caller take on this event now? The action is not
  among them: 409, listing them.
* :func:`target_status` — where the action leads from here.

Who may act is a *capacity*, not just a role: a worker acts on an event as its assigned
worker, and verifies it as its reporting worker only when someone else handled it
(PRODUCT.md: "re-checked by the reporter or a dispatcher").

>>> worker = Actor("worker", worker_id=7)
>>> sorted(allowed_actions(worker, EventState("dispatched", worker_id=7)))
['claim', 'return']
>>> allowed_actions(worker, EventState("dispatched", worker_id=8))
[]
>>> target_status("verify", EventState("handled"), passed=False)
'rework'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

#: Every status an event can be in (the CHECK constraint of ``events.status``).
STATUSES: Final = (
    "reported",
    "registered",
    "dispatched",
    "claimed",
    "postponed",
    "handled",
    "rework",
    "verified",
    "closed",
    "evaluated",
    "returned",
    "voided",
)

#: Actions people take through ``POST /events/{id}/actions``, in the order they are listed.
ACTIONS: Final = (
    "register",
    "void",
    "dispatch",
    "reassign",
    "claim",
    "return",
    "request_postponement",
    "approve_postponement",
    "deny_postponement",
    "handle",
    "verify",
    "close",
    "evaluate",
)

#: Actions the system writes on its own: a report's creation and a boundary re-route.
SYSTEM_ACTIONS: Final = ("report", "reroute")

#: A worker's open tasks: counted as their load, listed by ``/me/tasks``.
OPEN_TASK_STATUSES: Final = ("dispatched", "claimed", "postponed", "rework")

#: Events not yet handled: their due time still matters, so they can become overdue.
UNHANDLED_STATUSES: Final = (
    "reported",
    "registered",
    "dispatched",
    "claimed",
    "postponed",
    "rework",
    "returned",
)

#: Statuses in which nothing more happens (an evaluated event is done; a voided one never began).
FINAL_STATUSES: Final = ("evaluated", "voided")

#: Reasons a dispatcher gives for voiding a report.
VOID_REASONS: Final = ("invalid", "duplicate", "out_of_scope")

Capacity = Literal["dispatcher", "admin", "assigned_worker", "reporting_worker"]


@dataclass(frozen=True)
class Rule:
    """One row of the table: the statuses an action may start from, and who may take it."""

    action: str
    sources: frozenset[str]
    who: frozenset[Capacity]
    #: For actions from ``claimed``: True needs a pending postponement request, False
    #: needs none, None does not care.
    pending: bool | None = None


def _rule(
    action: str, sources: tuple[str, ...], who: tuple[Capacity, ...], pending: bool | None = None
) -> Rule:
    return Rule(action, frozenset(sources), frozenset(who), pending)


RULES: Final[dict[str, Rule]] = {
    r.action: r
    for r in (
        _rule("register", ("reported",), ("dispatcher",)),
        _rule("void", ("reported", "registered", "returned"), ("dispatcher",)),
        _rule("dispatch", ("registered", "returned"), ("dispatcher",)),
        _rule("reassign", ("dispatched", "claimed", "postponed", "rework"), ("dispatcher",)),
        _rule("claim", ("dispatched",), ("assigned_worker",)),
        _rule("return", ("dispatched", "claimed"), ("assigned_worker",)),
        _rule("request_postponement", ("claimed",), ("assigned_worker",), pending=False),
        _rule("approve_postponement", ("claimed",), ("dispatcher",), pending=True),
        _rule("deny_postponement", ("claimed",), ("dispatcher",), pending=True),
        _rule("handle", ("claimed", "postponed", "rework"), ("assigned_worker",)),
        _rule("verify", ("handled",), ("dispatcher", "reporting_worker")),
        _rule("close", ("verified",), ("dispatcher",)),
        _rule("evaluate", ("closed",), ("dispatcher", "admin")),
    )
}

#: The capacities an account role can ever hold.
_ROLE_CAPACITIES: Final[dict[str, frozenset[Capacity]]] = {
    "dispatcher": frozenset({"dispatcher"}),
    "admin": frozenset({"admin"}),
    "worker": frozenset({"assigned_worker", "reporting_worker"}),
    "planner": frozenset(),
    "reporter": frozenset(),
}


@dataclass(frozen=True)
class Actor:
    """Who asks: the account's role, and its worker when the account is a worker's."""

    role: str
    worker_id: int | None = None


@dataclass(frozen=True)
class EventState:
    """What the table needs to know about an event."""

    status: str
    worker_id: int | None = None
    reporter_worker_id: int | None = None
    handler_worker_id: int | None = None
    postponement_pending: bool = False


def role_may_take(role: str, action: str) -> bool:
    """Tell whether an account of ``role`` can take ``action`` on any event at all."""
    rule = RULES.get(action)
    return rule is not None and bool(rule.who & _ROLE_CAPACITIES.get(role, frozenset()))


def capacities(actor: Actor, event: EventState) -> frozenset[Capacity]:
    """The capacities in which ``actor`` stands towards ``event``."""
    held: set[Capacity] = set(_ROLE_CAPACITIES.get(actor.role, frozenset()))
    held -= {"assigned_worker", "reporting_worker"}  # earned per event, below
    if actor.role == "worker" and actor.worker_id is not None:
        if event.worker_id == actor.worker_id:
            held.add("assigned_worker")
        if (
            event.reporter_worker_id == actor.worker_id
            and event.handler_worker_id != actor.worker_id
        ):
            held.add("reporting_worker")
    return frozenset(held)


def may_take(actor: Actor, event: EventState, action: str) -> bool:
    """Tell whether ``actor`` may take ``action`` on ``event`` now."""
    rule = RULES.get(action)
    if rule is None or event.status not in rule.sources:
        return False
    if rule.pending is not None and rule.pending != event.postponement_pending:
        return False
    return bool(rule.who & capacities(actor, event))


def allowed_actions(actor: Actor, event: EventState) -> list[str]:
    """The actions ``actor`` may take on ``event`` now, in table order."""
    return [a for a in ACTIONS if may_take(actor, event, a)]


def target_status(
    action: str, event: EventState, *, passed: bool | None = None, routed: bool = False
) -> str:
    """Where ``action`` leads from ``event``'s status.

    ``passed`` is verify's outcome; ``routed`` says whether a registered report now has a
    worker (then it is dispatched at once).
    """
    if action == "register":
        return "dispatched" if routed else "registered"
    if action == "verify":
        return "verified" if passed else "rework"
    fixed = {
        "void": "voided",
        "dispatch": "dispatched",
        "reassign": "dispatched",
        "claim": "claimed",
        "return": "returned",
        "request_postponement": "claimed",
        "approve_postponement": "postponed",
        "deny_postponement": "claimed",
        "handle": "handled",
        "close": "closed",
        "evaluate": "evaluated",
    }
    if action not in fixed:
        raise KeyError(action)
    return fixed[action]

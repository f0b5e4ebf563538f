"""The study state machine ``draft → computing → ready → live → closed → aggregated``.

A transition is a conditional UPDATE on the current state, so two racing requests cannot both
move a study, and an illegal move raises before anything is written.
"""
from __future__ import annotations

from annotation.errors import IllegalTransition
from annotation.models import Study

S = Study.State

TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.COMPUTING}),
    S.COMPUTING: frozenset({S.READY, S.DRAFT}),  # back to draft when the evidence job fails
    S.READY: frozenset({S.LIVE, S.COMPUTING}),  # recompute before launch is allowed
    S.LIVE: frozenset({S.CLOSED}),
    S.CLOSED: frozenset({S.AGGREGATED, S.LIVE}),  # reopen to collect more answers
    S.AGGREGATED: frozenset({S.AGGREGATED, S.LIVE}),  # re-aggregate; reopen
}


def allowed_transitions(state: str) -> frozenset[str]:
    return TRANSITIONS.get(state, frozenset())


def transition_check(*, study: Study, to: str) -> None:
    """Raise :class:`IllegalTransition` unless ``study`` may go from its state to ``to``."""
    if to not in S.values:
        raise IllegalTransition(f"unknown study state {to!r}; states are {', '.join(S.values)}")
    if to not in allowed_transitions(study.state):
        allowed = ", ".join(sorted(allowed_transitions(study.state))) or "none"
        raise IllegalTransition(
            f"study {study.name!r} cannot go from {study.state} to {to} (allowed from {study.state}: {allowed})"
        )


def study_transition(*, study: Study, to: str, error: str = "") -> Study:
    """Move ``study`` to state ``to`` or raise :class:`IllegalTransition` and change nothing."""
    transition_check(study=study, to=to)
    current = study.state
    updated = Study.objects.filter(pk=study.pk, state=current).update(state=to, error=error)
    if not updated:
        study.refresh_from_db(fields=["state"])
        raise IllegalTransition(
            f"study {study.name!r} changed state to {study.state} meanwhile; cannot go from {current} to {to}"
        )
    study.state = to
    study.error = error
    return study

"""The integrator's look-back window (SPEC section 8, "The window" and "Corrections")."""

from __future__ import annotations

from datetime import date, timedelta

from reconciliation.records import Status

DEFAULT_LOOKBACK_DAYS = 3


def window_start(as_of: date, lookback_days: int) -> date:
    """First date inside the window: `D - L`."""
    if lookback_days < 0:
        raise ValueError("lookback_days deve ser >= 0")
    return as_of - timedelta(days=lookback_days)


def in_window(day: date, as_of: date, lookback_days: int) -> bool:
    """`D - L <= day <= D`."""
    return window_start(as_of, lookback_days) <= day <= as_of


def unpaired_status(day: date, as_of: date, lookback_days: int, corrected_on: date | None = None) -> Status:
    """Status of a record without counterpart, dated `day`.

    Records dated after `as_of` are left for a later run (pending). A corrected receipt stays
    pending while `D - L <= corrected_on` and becomes `manual` after; any other record is pending
    inside the window and `not_found` once it closed.
    """
    start = window_start(as_of, lookback_days)
    if day > as_of:
        return Status.PENDING
    if corrected_on is not None:
        return Status.PENDING if start <= corrected_on else Status.MANUAL
    return Status.PENDING if start <= day else Status.NOT_FOUND

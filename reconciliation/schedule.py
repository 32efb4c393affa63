"""The periodic job of the integration cycle, registered for `rq cron` (kept light to import)."""

from __future__ import annotations

from typing import Any

from onboarding.jobs import periodic

SYNC_INTERVAL_SECONDS = 300


@periodic(SYNC_INTERVAL_SECONDS, lock_timeout=3600)
def sync_due_integrations() -> dict[str, Any]:
    """Every few minutes: poll the inbox, send each daily remessa when due, retry failed passes."""
    from reconciliation.lifecycle import sync_due

    return sync_due()

"""Extension points of the ticket page, so other packages add to it without onboarding importing them.

- `register_timeline_source(func)`: `func(session, ticket) -> Iterable[TimelineEntry]`; mail ingest
  contributes the ticket's messages here and they are merged with the audit trail by time.
- `register_ticket_panel(func)`: `func(session, ticket, user) -> TicketPanel | None`; e.g. the
  reconciliation summary beside the checklist. Return None to show nothing for that ticket.
- `register_nav_item(label, endpoint, roles)`: a link in the top bar for the given roles.

HTML given as `markupsafe.Markup` is inserted as is (the contributor sanitizes it); a plain `str` is
escaped; a dict is rendered by the generic entry template with the keys `title`, `body`, `actor`,
`url`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from onboarding.models import Ticket, User

TimelineContent = Markup | str | Mapping[str, Any]


@dataclass(frozen=True)
class TimelineEntry:
    when: datetime
    kind: str  # "audit", "mail", ...: also the CSS class of the entry
    content: TimelineContent


@dataclass(frozen=True)
class TicketPanel:
    title: str
    body: Markup | str
    order: int = 100  # lower comes first


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: frozenset[str] = field(default_factory=frozenset)  # empty: everyone


TimelineSource = Callable[[Session, Ticket], Iterable[TimelineEntry | tuple[datetime, str, Any]]]
PanelSource = Callable[[Session, Ticket, User], TicketPanel | None]

_timeline_sources: list[TimelineSource] = []
_panel_sources: list[PanelSource] = []
_nav_items: list[NavItem] = []


def register_timeline_source(func: TimelineSource) -> TimelineSource:
    """Usable as a decorator; registering the same function twice has no effect."""
    if func not in _timeline_sources:
        _timeline_sources.append(func)
    return func


def register_ticket_panel(func: PanelSource) -> PanelSource:
    if func not in _panel_sources:
        _panel_sources.append(func)
    return func


def register_nav_item(label: str, endpoint: str, roles: Iterable[str] = ()) -> None:
    item = NavItem(label, endpoint, frozenset(str(r) for r in roles))
    if item not in _nav_items:
        _nav_items.append(item)


def contributed_timeline(db: Session, ticket: Ticket) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = []
    for source in _timeline_sources:
        for item in source(db, ticket):
            entry = item if isinstance(item, TimelineEntry) else TimelineEntry(*item)
            if entry.when.tzinfo is None:  # naive means UTC, so entries from every source sort together
                entry = TimelineEntry(entry.when.replace(tzinfo=UTC), entry.kind, entry.content)
            entries.append(entry)
    return entries


def contributed_panels(db: Session, ticket: Ticket, user: User) -> list[TicketPanel]:
    panels = [panel for source in _panel_sources if (panel := source(db, ticket, user)) is not None]
    return sorted(panels, key=lambda p: p.order)


def nav_items_for(role: str) -> list[NavItem]:
    return [item for item in _nav_items if not item.roles or role in item.roles]

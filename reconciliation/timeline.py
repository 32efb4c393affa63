"""The integration's events on the ticket's timeline, in pt-BR (a `register_timeline_source`)."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onboarding.models import Ticket, User
from onboarding.web_hooks import TimelineEntry
from reconciliation import records, triage
from reconciliation.integration_models import DivergenceTriage, Integration, SyncPass
from reconciliation.models import Correction, StoredReceipt

MAX_ENTRIES = 60  # per kind: the timeline stays readable on a busy integration
TRANSPORTS = {"folder": "pasta de troca", "sftp": "SFTP"}
FIELD_LABELS = {**triage.KIND_LABELS}


def integration_timeline(db: Session, ticket: Ticket) -> Iterator[TimelineEntry]:
    integration = db.scalars(sa.select(Integration).where(Integration.ticket_id == ticket.id)).one_or_none()
    if integration is None:
        return
    names = {u.id: u.display_name for u in db.scalars(sa.select(User))}
    if integration.configured_at is not None:
        yield TimelineEntry(
            integration.configured_at,
            "recon",
            {
                "title": "Integração configurada",
                "body": f"Transporte: {TRANSPORTS.get(integration.transport, integration.transport)}; "
                f"remessa diária às {integration.remessa_time}; "
                f"estabelecimentos: {', '.join(integration.establishment_codes)}",
                "actor": names.get(integration.configured_by_id or 0, "Sistema"),
            },
        )
    if integration.first_run_at is not None:
        yield TimelineEntry(
            integration.first_run_at,
            "recon",
            {
                "title": "Primeira conciliação executada",
                "body": "Remessa enviada à Boavista.",
                "actor": "Sistema",
            },
        )
    if integration.validation_run_at is not None:
        count = db.scalar(
            sa.select(sa.func.count())
            .select_from(DivergenceTriage)
            .where(DivergenceTriage.integration_id == integration.id, DivergenceTriage.from_validation)
        )
        yield TimelineEntry(
            integration.validation_run_at,
            "recon",
            {
                "title": "Primeira conciliação com o retorno da Boavista",
                "body": f"{count} divergência(s) para validar.",
                "actor": "Sistema",
            },
        )
    triaged = db.scalars(
        sa.select(DivergenceTriage)
        .where(DivergenceTriage.integration_id == integration.id, DivergenceTriage.triaged_at.is_not(None))
        .order_by(DivergenceTriage.triaged_at.desc())
        .limit(MAX_ENTRIES)
    )
    for row in triaged:
        assert row.triaged_at is not None and row.responsible is not None
        what = f"Venda {row.record_key}" if row.kind == "sale" else f"Venda da operadora {row.record_key}"
        kinds = ", ".join(triage.KIND_LABELS.get(k, k) for k in row.divergences.split("|") if k)
        yield TimelineEntry(
            row.triaged_at,
            "recon",
            {
                "title": f"Divergência atribuída: {triage.RESPONSIBLE_LABELS[row.responsible]}",
                "body": f"{what} ({kinds})" + (f" — {row.note}" if row.note else ""),
                "actor": names.get(row.triaged_by_id or 0, "Sistema"),
            },
        )
    failures = db.scalars(
        sa.select(SyncPass)
        .where(SyncPass.integration_id == integration.id, SyncPass.status == "failed")
        .order_by(SyncPass.id.desc())
        .limit(MAX_ENTRIES)
    )
    for sync_pass in failures:
        yield TimelineEntry(
            sync_pass.finished_at or sync_pass.started_at,
            "recon",
            {
                "title": "Sincronização com a Boavista falhou",
                "body": sync_pass.error or "",
                "actor": "Sistema",
            },
        )
    codes = [c for c in (records.norm_code(x) for x in integration.establishment_codes) if c]
    if codes:
        fixes = db.scalars(
            sa.select(Correction)
            .join(StoredReceipt, StoredReceipt.id == Correction.receipt_id)
            .where(StoredReceipt.establishment_code.in_(codes))
            .order_by(Correction.id.desc())
            .limit(MAX_ENTRIES)
        )
        for fix in fixes:
            changes = "; ".join(
                f"{FIELD_LABELS.get(k, k)}: {fix.before.get(k)} → {v}" for k, v in (fix.after or {}).items()
            )
            yield TimelineEntry(
                fix.corrected_at,
                "recon",
                {
                    "title": f"Venda {fix.sale_id} corrigida",
                    "body": changes + " (vai na próxima remessa)",
                    "actor": names.get(fix.user_id or 0, "Sistema"),
                },
            )

"""The outbox: mail is queued in the transaction that causes it and sent after the commit.

Life of a row: `queued` -> `sending` -> `sent`, or back to `queued` with exponential back-off
while the server is down, or `failed` after MAX_ATTEMPTS (or a permanent 5xx refusal).

Never sent twice:
- a sender claims a row (`sending`, claim token, `claimed_at`) and commits before touching SMTP;
  PostgreSQL picks rows with SELECT ... FOR UPDATE SKIP LOCKED, and every database confirms the
  claim with a conditional UPDATE, so two workers never hold the same row;
- just before the DATA command the sender commits `data_started_at`. If the connection dies
  after the body went out, the outcome is unknown: the row becomes `uncertain` and is never
  resent automatically. An agent who checked (with the recipient or the server's logs) that it
  did not arrive requeues it with `requeue()`;
- a claim older than CLAIM_TIMEOUT belongs to a crashed sender: without `data_started_at` it
  surely was not sent and is requeued; with it, it becomes `uncertain`.

With SMTP_HOST unset nothing is sent and the rows simply wait.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import nh3
from flask import current_app
from markupsafe import Markup
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mail_ingest import loop_guard, tokens
from mail_ingest.compose import (
    MailParts,
    bare_address,
    build_message,
    clean_subject,
    domain_of,
    normalize_addresses,
)
from mail_ingest.outbound_models import OutboundMail, OutboundRecipient, OutboundStatus
from mail_ingest.smtp_sender import (
    ClaimLost,
    SmtpConnection,
    SmtpFailure,
    SmtpSettings,
    SmtpUncertain,
    extra_setting,
)
from onboarding import audit, db
from onboarding.db import utcnow
from onboarding.errors import InvalidInput, NotFound, WorkflowError
from onboarding.jobs import enqueue_after_commit, job, periodic
from onboarding.models import Ticket, TicketStatus, User
from onboarding.services import AGENTS, require_role

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=4)
CLAIM_TIMEOUT = timedelta(minutes=10)  # far above the SMTP connect + read timeouts
MAX_REFERENCES = 20
PASS_LIMIT = 200  # messages per pass; the periodic job picks up the rest a minute later
REQUEUEABLE = frozenset({OutboundStatus.UNCERTAIN, OutboundStatus.FAILED, OutboundStatus.SUPPRESSED})


def backoff(attempts: int) -> timedelta:
    """Delay after the `attempts`-th failed attempt: 1, 2, 4, ... minutes, at most 4 hours."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


# --- settings --------------------------------------------------------------------------------


def sender_address(config: dict[str, Any] | Any = None) -> str:
    config = config if config is not None else current_app.config
    return (config.get("MAIL_FROM") or config.get("SUPPORT_ADDRESS") or "").strip()


def own_addresses(config: Any = None) -> set[str]:
    config = config if config is not None else current_app.config
    found = {bare_address(v) for v in (config.get("MAIL_FROM"), config.get("SUPPORT_ADDRESS")) if v}
    return {a for a in found if a}


def _secret() -> str:
    return str(current_app.config["SECRET_KEY"])


def _daily_cap() -> int:
    return int(extra_setting(current_app.config, "MAIL_AUTO_DAILY_CAP") or loop_guard.AUTO_DAILY_CAP)


# --- queueing --------------------------------------------------------------------------------


def _normalize_references(in_reply_to: str | None, references: str | Iterable[str] | None) -> str:
    if references is None:
        items: list[str] = []
    elif isinstance(references, str):
        items = tokens.message_ids_in(references)
    else:
        items = [i for r in references for i in tokens.message_ids_in(r)]
    if in_reply_to:
        items += tokens.message_ids_in(in_reply_to)
    unique = list(dict.fromkeys(items))
    if len(unique) > MAX_REFERENCES:  # the thread's root and the newest matter; keep the header short
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1) :]
    return " ".join(unique)


def queue_mail(
    session: Session,
    *,
    ticket_id: int | None,
    to: str | Iterable[str],
    cc: str | Iterable[str] | None = None,
    subject: str,
    text: str,
    html: str = "",
    template: str = "",
    in_reply_to: str | None = None,
    references: str | Iterable[str] | None = None,
    automatic: bool,
    actor: User | None,
    trigger_headers: loop_guard.Headers | None = None,
) -> OutboundMail:
    """Write a mail to the outbox in the caller's transaction (flush only, caller commits).

    The final Message-ID (with the ticket's signed token) is fixed here. After the commit a job
    sends it. An automatic mail is kept as `suppressed`, with the reason, when it would answer an
    automatic mail (`trigger_headers`), go to our own mailbox, or pass the daily cap per address.
    """
    to_list = normalize_addresses(to, "Para")
    to_keys = {bare_address(a) for a in to_list}
    cc_list = [a for a in normalize_addresses(cc, "Cc") if bare_address(a) not in to_keys]
    if not to_list:
        raise InvalidInput("missing_recipient", "Informe ao menos um destinatário.")
    subject = clean_subject(subject)
    if not subject:
        raise InvalidInput("missing_subject", "Informe o assunto do e-mail.")
    if len(subject) > 500:
        raise InvalidInput("subject_too_long", "O assunto do e-mail passa de 500 caracteres.")
    if not (text or "").strip():
        raise InvalidInput("empty_body", "O texto do e-mail está vazio.")
    reply_ids = [i for i in tokens.message_ids_in(in_reply_to) if len(i) <= 300]
    reply_in = reply_ids[-1] if reply_ids else None

    mail_from = sender_address()
    if not mail_from:
        raise InvalidInput("missing_mail_from", "Configure MAIL_FROM ou SUPPORT_ADDRESS para enviar e-mails.")
    support = (current_app.config.get("SUPPORT_ADDRESS") or "").strip()
    reply_to = support if support and bare_address(support) != bare_address(mail_from) else ""
    message_id = tokens.make_message_id(ticket_id, _secret(), domain_of(mail_from) or tokens.DEFAULT_DOMAIN)
    now = utcnow()
    mail = OutboundMail(
        ticket_id=ticket_id,
        message_id=message_id,
        status=OutboundStatus.QUEUED,
        template=template or "",
        automatic=automatic,
        mail_from=mail_from,
        reply_to=reply_to,
        to_addrs=to_list,
        cc_addrs=cc_list,
        subject=subject,
        text_body=text.replace("\r\n", "\n"),
        html_body=html or "",
        in_reply_to=reply_in,
        references=_normalize_references(reply_in, references),
        attempts=0,
        next_attempt_at=now,
        last_error="",
        suppressed_reason="",
        smtp_reply="",
        created_by_id=actor.id if actor is not None else None,
        created_at=now,
    )
    addresses = [bare_address(a) for a in [*to_list, *cc_list]]
    if automatic:
        reason = _suppression_reason(session, addresses, trigger_headers)
        if reason:
            mail.status = OutboundStatus.SUPPRESSED
            mail.suppressed_reason = reason[:300]
    mail.recipients = [
        OutboundRecipient(
            address=a, kind="to" if i < len(to_list) else "cc", automatic=automatic, created_at=now
        )
        for i, a in enumerate(addresses)
    ]
    session.add(mail)
    session.flush()
    audit.record(
        session,
        actor,
        "mail.suppressed" if mail.status == OutboundStatus.SUPPRESSED else "mail.queued",
        mail,
        ticket_id=ticket_id,
        after=_audit_state(mail),
    )
    if mail.status == OutboundStatus.QUEUED:
        enqueue_after_commit(session, send_mail_job, mail.id)
    session.flush()
    return mail


def _suppression_reason(
    session: Session, addresses: list[str], trigger_headers: loop_guard.Headers | None
) -> str | None:
    if trigger_headers is not None:
        reason = loop_guard.automatic_reason(trigger_headers)
        if reason:
            return f"loop guard: answering an automatic mail ({reason})"
    ours = own_addresses() & set(addresses)
    if ours:
        return f"loop guard: automatic mail to our own mailbox ({', '.join(sorted(ours))})"
    return loop_guard.over_daily_cap(session, addresses, _daily_cap())


def _audit_state(mail: OutboundMail) -> dict[str, Any]:
    return {
        "status": mail.status,
        "message_id": mail.message_id,
        "to": list(mail.to_addrs),
        "cc": list(mail.cc_addrs),
        "subject": mail.subject,
        "template": mail.template,
        "automatic": mail.automatic,
        "attempts": mail.attempts,
        "reason": mail.suppressed_reason or mail.last_error or "",
    }


def thread_headers_for(session: Session, message_id: str) -> tuple[str, str]:
    """(In-Reply-To, References) for a reply to `message_id` when it is one of our own mails.

    For received mail the inbound side knows the References; it passes them to queue_mail.
    """
    mail = session.scalars(select(OutboundMail).where(OutboundMail.message_id == message_id)).first()
    if mail is None:
        return message_id, message_id
    return mail.message_id, _normalize_references(mail.message_id, mail.references)


def requeue(session: Session, actor: User | None, mail_id: int) -> OutboundMail:
    """An agent's decision to send an uncertain, failed or suppressed mail again (full retries)."""
    require_role(actor, AGENTS, "reenviar e-mail")
    mail = session.get(OutboundMail, mail_id)
    if mail is None:
        raise NotFound("mail_not_found", f"E-mail {mail_id} não encontrado.")
    if mail.ticket_id is not None:
        ticket = session.get(Ticket, mail.ticket_id)
        if ticket is not None and ticket.status == TicketStatus.CLOSED:
            raise WorkflowError(
                "ticket_closed", f"O chamado {ticket.number} está encerrado e não aceita alterações."
            )
    before = _audit_state(mail)
    result = session.execute(
        update(OutboundMail)
        .where(OutboundMail.id == mail_id, OutboundMail.status.in_(list(REQUEUEABLE)))
        .values(
            status=OutboundStatus.QUEUED,
            attempts=0,
            next_attempt_at=utcnow(),
            claim_token=None,
            claimed_at=None,
            data_started_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise WorkflowError(
            "mail_not_requeueable",
            "Só é possível reenviar e-mails com envio incerto, com falha ou bloqueados.",
        )
    session.refresh(mail)
    audit.record(
        session,
        actor,
        "mail.requeued",
        mail,
        ticket_id=mail.ticket_id,
        before=before,
        after=_audit_state(mail),
    )
    enqueue_after_commit(session, send_mail_job, mail.id)
    session.flush()
    return mail


# --- sending ---------------------------------------------------------------------------------


@dataclass
class SendSummary:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered: int = 0
    lost_claims: int = 0
    queued: int = 0  # left in the outbox, waiting
    due: int = 0  # of those, due now (their back-off is over)
    smtp: str = "configured"
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "retry": self.retry,
            "failed": self.failed,
            "uncertain": self.uncertain,
            "recovered": self.recovered,
            "lost_claims": self.lost_claims,
            "queued": self.queued,
            "due": self.due,
            "smtp": self.smtp,
            "errors": self.errors[:5],
        }


@dataclass(frozen=True)
class Claim:
    mail_id: int
    token: str
    attempts: int
    ticket_id: int | None
    parts: MailParts


def count_due(session: Session, *, ignore_backoff: bool = False) -> int:
    query = select(func.count(OutboundMail.id)).where(OutboundMail.status == OutboundStatus.QUEUED)
    if not ignore_backoff:
        query = query.where(OutboundMail.next_attempt_at <= utcnow())
    return int(session.scalar(query) or 0)


def send_due(
    *, ignore_backoff: bool = False, mail_id: int | None = None, limit: int = PASS_LIMIT
) -> dict[str, Any]:
    """One pass over the outbox: sends what is due (everything queued with `ignore_backoff`)."""
    summary = SendSummary()
    settings = SmtpSettings.from_config(current_app.config)
    summary.recovered = recover_stale_claims()
    if settings is None:
        summary.smtp = "not_configured"
        return _count_left(summary).as_dict()
    attempted: set[int] = set()
    with SmtpConnection(settings) as smtp:
        while len(attempted) < limit:
            claim = claim_next(ignore_backoff=ignore_backoff, only_id=mail_id, exclude=attempted)
            if claim is None:
                break
            attempted.add(claim.mail_id)
            stop = _deliver(smtp, claim, summary)
            if stop:
                break
    return _count_left(summary).as_dict()


def _count_left(summary: SendSummary) -> SendSummary:
    with db.session_scope() as session:
        summary.queued = count_due(session, ignore_backoff=True)
        summary.due = count_due(session)
    return summary


def claim_next(
    *, ignore_backoff: bool = False, only_id: int | None = None, exclude: set[int] | None = None
) -> Claim | None:
    """Claim one due row for this sender and commit the claim; None when nothing is due."""
    while True:
        with db.session_scope() as session:
            now = utcnow()
            query = select(OutboundMail.id).where(OutboundMail.status == OutboundStatus.QUEUED)
            if not ignore_backoff:
                query = query.where(OutboundMail.next_attempt_at <= now)
            if only_id is not None:
                query = query.where(OutboundMail.id == only_id)
            if exclude:
                query = query.where(OutboundMail.id.not_in(sorted(exclude)))
            query = query.order_by(OutboundMail.next_attempt_at, OutboundMail.id).limit(1)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            candidate = session.scalar(query)
            if candidate is None:
                return None
            token = secrets.token_hex(16)
            result = session.execute(
                update(OutboundMail)
                .where(OutboundMail.id == candidate, OutboundMail.status == OutboundStatus.QUEUED)
                .values(
                    status=OutboundStatus.SENDING,
                    claim_token=token,
                    claimed_at=now,
                    data_started_at=None,
                    attempts=OutboundMail.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another sender took it between our SELECT and UPDATE (SQLite)
            mail = session.get(OutboundMail, candidate)
            assert mail is not None
            session.refresh(mail)
            return Claim(
                mail_id=mail.id,
                token=token,
                attempts=mail.attempts,
                ticket_id=mail.ticket_id,
                parts=MailParts(
                    message_id=mail.message_id,
                    mail_from=mail.mail_from,
                    reply_to=mail.reply_to,
                    to_addrs=list(mail.to_addrs),
                    cc_addrs=list(mail.cc_addrs),
                    subject=mail.subject,
                    text_body=mail.text_body,
                    html_body=mail.html_body,
                    in_reply_to=mail.in_reply_to,
                    references=mail.references,
                    automatic=mail.automatic,
                ),
            )


def _deliver(smtp: SmtpConnection, claim: Claim, summary: SendSummary) -> bool:
    """Send one claimed row and record the outcome. True when the pass should stop."""
    try:
        message = build_message(claim.parts, utcnow())
        payload = message.as_bytes(policy=message.policy)
    except (ValueError, TypeError, LookupError) as error:  # a row no message can be made of
        _finish(
            claim,
            OutboundStatus.FAILED,
            error=f"cannot build the message: {error}",
            audit_action="mail.failed",
        )
        summary.failed += 1
        summary.errors.append(str(error))
        return False
    try:
        result = smtp.send(
            payload,
            bare_address(claim.parts.mail_from),
            claim.parts.envelope_recipients,
            before_data=lambda: _mark_data_started(claim),
        )
    except ClaimLost:
        summary.lost_claims += 1
        return False
    except SmtpUncertain as error:
        log.error("outbound mail %s: outcome unknown: %s", claim.mail_id, error)
        _finish(claim, OutboundStatus.UNCERTAIN, error=str(error), audit_action="mail.uncertain")
        summary.uncertain += 1
        summary.errors.append(str(error))
        return True
    except SmtpFailure as error:
        summary.errors.append(str(error))
        if error.permanent or claim.attempts >= MAX_ATTEMPTS:
            reason = str(error) if error.permanent else f"gave up after {claim.attempts} attempts: {error}"
            _finish(claim, OutboundStatus.FAILED, error=reason, audit_action="mail.failed")
            summary.failed += 1
        else:
            log.warning("outbound mail %s: attempt %s failed: %s", claim.mail_id, claim.attempts, error)
            _finish(
                claim, OutboundStatus.QUEUED, error=str(error), retry_at=utcnow() + backoff(claim.attempts)
            )
            summary.retry += 1
        return error.connection
    refused = "; ".join(f"{k}: {v}" for k, v in result.refused.items())
    _finish(
        claim,
        OutboundStatus.SENT,
        error=f"refused recipients: {refused}" if refused else "",
        reply=result.reply,
        audit_action="mail.sent",
    )
    summary.sent += 1
    return False


def _mark_data_started(claim: Claim) -> bool:
    with db.session_scope() as session:
        result = session.execute(
            update(OutboundMail)
            .where(
                OutboundMail.id == claim.mail_id,
                OutboundMail.claim_token == claim.token,
                OutboundMail.status == OutboundStatus.SENDING,
            )
            .values(data_started_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def _finish(
    claim: Claim,
    status: OutboundStatus,
    *,
    error: str = "",
    reply: str = "",
    retry_at: datetime | None = None,
    audit_action: str | None = None,
) -> None:
    """Record the outcome, only if the claim is still ours (or was marked uncertain meanwhile)."""
    values: dict[str, Any] = {"status": status, "last_error": error[:2000]}
    if status == OutboundStatus.SENT:
        values |= {"sent_at": utcnow(), "smtp_reply": reply[:500], "claim_token": None}
    elif status == OutboundStatus.QUEUED:
        values |= {"next_attempt_at": retry_at or utcnow(), "claim_token": None, "claimed_at": None}
    elif status == OutboundStatus.FAILED:
        values |= {"claim_token": None}
    allowed = [OutboundStatus.SENDING]
    if status in (OutboundStatus.SENT, OutboundStatus.UNCERTAIN):
        allowed.append(OutboundStatus.UNCERTAIN)  # a stale-claim sweep may have been quicker
    with db.session_scope() as session:
        result = session.execute(
            update(OutboundMail)
            .where(
                OutboundMail.id == claim.mail_id,
                OutboundMail.claim_token == claim.token,
                OutboundMail.status.in_(allowed),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            log.warning("outbound mail %s: claim lost before recording %s", claim.mail_id, status)
            return
        if audit_action:
            mail = session.get(OutboundMail, claim.mail_id)
            assert mail is not None
            audit.record(
                session, None, audit_action, mail, ticket_id=claim.ticket_id, after=_audit_state(mail)
            )


def recover_stale_claims(timeout: timedelta = CLAIM_TIMEOUT) -> int:
    """Rows left `sending` by a crashed sender: requeued before DATA, `uncertain` after."""
    cutoff = utcnow() - timeout
    with db.session_scope() as session:
        given_up = session.execute(  # a row that crashes its sender every time must stop somewhere
            update(OutboundMail)
            .where(
                OutboundMail.status == OutboundStatus.SENDING,
                OutboundMail.claimed_at < cutoff,
                OutboundMail.data_started_at.is_(None),
                OutboundMail.attempts >= MAX_ATTEMPTS,
            )
            .values(
                status=OutboundStatus.FAILED,
                claim_token=None,
                last_error=f"sender stopped before DATA {MAX_ATTEMPTS} times; gave up",
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        requeued = session.execute(
            update(OutboundMail)
            .where(
                OutboundMail.status == OutboundStatus.SENDING,
                OutboundMail.claimed_at < cutoff,
                OutboundMail.data_started_at.is_(None),
            )
            .values(
                status=OutboundStatus.QUEUED,
                claim_token=None,
                claimed_at=None,
                next_attempt_at=utcnow(),
                last_error="sender stopped before DATA; requeued",
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        stale = session.scalars(
            select(OutboundMail).where(
                OutboundMail.status == OutboundStatus.SENDING,
                OutboundMail.claimed_at < cutoff,
                OutboundMail.data_started_at.is_not(None),
            )
        ).all()
        for mail in stale:
            mail.status = OutboundStatus.UNCERTAIN
            mail.last_error = "sender stopped during DATA; delivery unknown"
            audit.record(
                session, None, "mail.uncertain", mail, ticket_id=mail.ticket_id, after=_audit_state(mail)
            )
    return int(given_up or 0) + int(requeued or 0) + len(stale)


@job
def send_mail_job(mail_id: int) -> dict[str, Any]:
    """Queued after the commit that wrote the mail: sends it if it is still due."""
    return send_due(mail_id=mail_id)


@periodic(60)
def send_outbox_periodic() -> dict[str, Any]:
    """Every minute: what is due (retries after back-off, mail left while SMTP was down)."""
    return send_due()


# --- the timeline ----------------------------------------------------------------------------

HTML_TAGS = {
    "a",
    "b",
    "br",
    "blockquote",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}


def sanitize_html(html: str) -> Markup:
    cleaned = nh3.clean(
        html or "",
        tags=HTML_TAGS,
        clean_content_tags={"script", "style", "title"},
        url_schemes={"http", "https", "mailto"},
    )
    return Markup(cleaned)


def outbound_timeline(session: Session, ticket_id: int) -> list[dict[str, Any]]:
    """The ticket's outgoing mail, oldest first, shaped like the inbound timeline entries."""
    mails = session.scalars(
        select(OutboundMail)
        .where(OutboundMail.ticket_id == ticket_id)
        .order_by(OutboundMail.created_at, OutboundMail.id)
        .execution_options(populate_existing=True)  # the sender updates rows in sessions of its own
    ).all()
    return [
        {
            "id": m.id,
            "kind": "outbound",
            "direction": "out",
            "when": m.sent_at or m.created_at,
            "created_at": m.created_at,
            "sent_at": m.sent_at,
            "from": m.mail_from,
            "to": list(m.to_addrs),
            "cc": list(m.cc_addrs),
            "subject": m.subject,
            "text": m.text_body,
            "html_safe": sanitize_html(m.html_body) if m.html_body else None,
            "status": m.status,
            "message_id": m.message_id,
            "in_reply_to": m.in_reply_to,
            "template": m.template,
            "automatic": m.automatic,
            "attempts": m.attempts,
            "next_attempt_at": m.next_attempt_at,
            "error": m.suppressed_reason or m.last_error,
            "requeueable": m.status in REQUEUEABLE,
        }
        for m in mails
    ]

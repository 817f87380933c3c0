"""A ticket's timeline, oldest first: staff actions (its TicketEvents), who opened it and heard its messages
(the audit, console and API), the call's webhooks, and the background jobs on its recordings (no Flask)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.audit import ACTION_LABELS, ticket_audit
from ivr.models import Job, Ticket
from ivr.recordings.download import download_recording
from ivr.recordings.transcribe import transcribe_recording

EVENT_LABELS = {
    # "viewed" and "listened" are older rows: views and listens are now in the audit (AuditEvent).
    "viewed": "查看工单",
    "listened": "收听录音",
    "status": "状态变更",
    "transcript_corrected": "修改转写",
    "note": "添加备注",
    "flagged": "报告经理",
    "record_updated": "修改来电记录",
    "notified": "通知责任部门",  # e.g. a follow-up call found it not resolved
    "call_satisfaction": "来电人评价本次服务",  # 1–5 keyed at the end of the call (ivr.tickets.call_satisfaction)
    # Follow-up calls (回访, ivr.followup): scheduled, each attempt, how it ended
    "follow_up_scheduled": "安排回访电话",
    "follow_up_call": "拨出回访电话",
    "follow_up_call_refused": "回访电话被拒绝拨出",
    "follow_up_retry": "回访未接通,稍后再拨",
    "follow_up_answered": "住户接听回访并作答",
    "follow_up_comment": "住户回访留言",
    "follow_up_opted_out": "住户不再接收回访",
    "follow_up_unreachable": "回访未能完成,需人工回访",
    "follow_up_cancelled": "回访取消",
    # Staff call-backs from the console (回拨, ivr.followup.call_back)
    "call_back_requested": "回拨住户",
    "call_back_done": "回拨通话结束",
    "call_back_failed": "回拨未接通",
}
# What of a webhook's parameters the timeline shows.
SHOWN_PARAMS = ("Digits", "CallStatus", "DialCallStatus", "RecordingStatus")


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    who: str
    what: str
    detail: dict[str, Any]


def timeline(session: Session, ticket: Ticket) -> list[TimelineEntry]:
    """Everything that happened: the call's webhooks, the jobs on its recordings, staff actions, and who
    opened the ticket and heard its messages (from the audit, in the console or through the API)."""
    entries = [
        TimelineEntry(event.at, event.actor or "系统", EVENT_LABELS.get(event.kind, event.kind), event.detail)
        for event in ticket.events
    ]
    entries += [
        TimelineEntry(
            read.at,
            read.actor,
            ACTION_LABELS[read.action] + ("(API)" if read.via == "api" else ""),
            {"recording": read.recording_sid} if read.recording_sid else {},
        )
        for read in ticket_audit(session, ticket.id)
    ]
    if ticket.call is not None:
        entries += [
            TimelineEntry(
                event.at,
                "电话线路",
                f"来电步骤 {event.endpoint}",
                {key: value for key, value in event.params.items() if key in SHOWN_PARAMS},
            )
            for event in ticket.call.events
        ]
    recording_ids = [recording.id for recording in ticket.recordings]
    if recording_ids:
        labels = {download_recording.name: "下载录音", transcribe_recording.name: "语音转写"}
        for job in session.scalars(select(Job).where(Job.subject_id.in_(recording_ids), Job.kind.in_(labels))):
            entries.append(
                TimelineEntry(
                    job.finished_at or job.created_at,
                    "后台任务",
                    f"{labels[job.kind]}({job.state.value})",
                    {"attempts": job.attempts, "error": job.last_error}
                    if job.last_error
                    else {"attempts": job.attempts},
                )
            )
    return sorted(entries, key=lambda entry: entry.at)

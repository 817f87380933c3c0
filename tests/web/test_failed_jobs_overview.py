"""The overview counts failed background jobs for managers and admins, and says how to retry them."""

from __future__ import annotations

import re

import pytest

from ivr.models import Job, JobState
from tests.factories import create_staff, login


def add_jobs(database, *states: JobState) -> None:
    with database.session() as session:
        for number, state in enumerate(states):
            session.add(Job(kind="download_recording", subject_id=number, state=state))


def overview_as(client, database, role: str) -> str:
    create_staff(database, "li", role, department="工程部" if role == "department" else None)
    assert login(client, "li").status_code == 302
    response = client.get("/console/dashboard")
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_failed_jobs_are_counted_with_the_commands_that_retry_them(client, database, role):
    add_jobs(database, JobState.FAILED, JobState.FAILED, JobState.DONE, JobState.QUEUED, JobState.RUNNING)
    page = overview_as(client, database, role)
    card = re.search(r'<section class="card" id="failed-jobs">(.*?)</section>', page, re.S)
    assert card, page
    assert "<h2>失败的后台任务: 2</h2>" in card.group(1)
    assert "<code>ivr jobs list --state failed</code>" in card.group(1)
    assert "<code>ivr jobs retry --all-failed</code>" in card.group(1)


def test_no_failed_jobs_shows_zero_and_no_commands(client, database):
    add_jobs(database, JobState.DONE)
    page = overview_as(client, database, "manager")
    assert "失败的后台任务: 0" in page and "ivr jobs retry" not in page


@pytest.mark.parametrize("role", ["night_shift", "qa", "department"])
def test_other_roles_do_not_see_the_jobs(client, database, role):
    add_jobs(database, JobState.FAILED)
    assert "失败的后台任务" not in overview_as(client, database, role)

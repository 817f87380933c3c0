"""Every module that declares a job (@job) or a periodic task (@periodic).

Imported by create_app and by the job commands, so that every process that runs, gives up or retries jobs
knows every kind; tests/test_jobs.py fails when a module that declares one is missing here.
"""

from __future__ import annotations

from ivr import notifications
from ivr.followup import call_back
from ivr.followup import calls as follow_up_calls
from ivr.qa import evaluations
from ivr.recordings import download, reconcile, transcribe

JOB_MODULES = (download, transcribe, evaluations, notifications, reconcile, follow_up_calls, call_back)

"""Twilio's identifier formats. A SID from a webhook or a REST answer is checked against these before it
goes into a file path, a query or a log line."""

from __future__ import annotations

import re

CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")

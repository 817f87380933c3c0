"""The numbers the phone-etiquette standard (../shared/STANDARD.md) sets, for the line that follows it and
for QA that checks it."""

from __future__ import annotations

# E1 铃响三声,必有应答: about three rings, which is how long the line rings the on-duty numbers and what
# QA allows between ringing and answering.
THREE_RINGS_SECONDS = 15

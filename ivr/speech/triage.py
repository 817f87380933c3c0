"""Urgency triage of a caller's message by keywords from a data file staff can extend."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KEYWORDS_PATH = Path(__file__).with_name("triage_keywords.txt")


class TriageKeywordsError(ValueError):
    """The keywords file cannot be read or has a malformed line; the message names the file and line."""


@dataclass(frozen=True)
class TriageRule:
    """A keyword and the reason shown on the ticket when it is heard."""

    keyword: str
    reason: str


@dataclass(frozen=True)
class TriageResult:
    """Whether a message is urgent, the distinct reasons (in file order) and the keywords heard."""

    urgent: bool
    reasons: list[str]
    matched: list[str]


def parse_keywords(text: str, source: str = "keywords") -> tuple[TriageRule, ...]:
    """Rules from the file format: `keyword` or `keyword<TAB>reason` per line, `#` comments, blank lines."""
    rules: list[TriageRule] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = [part.strip() for part in line.split("\t")]
        if len(fields) > 2:
            raise TriageKeywordsError(f"{source}:{number}: expected `keyword<TAB>reason`, found {len(fields)} fields")
        keyword = _compact(fields[0])
        reason = fields[1] if len(fields) == 2 and fields[1] else keyword
        if not keyword:
            raise TriageKeywordsError(f"{source}:{number}: the keyword is empty")
        rules.append(TriageRule(keyword, reason))
    return tuple(rules)


@functools.lru_cache(maxsize=8)
def load_keywords(path: Path = DEFAULT_KEYWORDS_PATH) -> tuple[TriageRule, ...]:
    """The rules in `path`, read once per process (per path)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TriageKeywordsError(f"cannot read triage keywords from {path}: {exc}") from exc
    return parse_keywords(text, source=str(path))


def triage(text: str, keywords_path: Path | None = None) -> TriageResult:
    """Match `text` (a transcript, raw or normalised) against the keywords in `keywords_path`
    (default: triage_keywords.txt beside this module)."""
    rules = load_keywords(keywords_path or DEFAULT_KEYWORDS_PATH)
    # Vosk separates Chinese tokens with spaces, and a keyword may span two tokens (水管 爆).
    compact = _compact(text)
    matched: list[str] = []
    reasons: list[str] = []
    for rule in rules:
        if rule.keyword in compact and rule.keyword not in matched:
            matched.append(rule.keyword)
            if rule.reason not in reasons:
                reasons.append(rule.reason)
    return TriageResult(urgent=bool(matched), reasons=reasons, matched=matched)


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text)

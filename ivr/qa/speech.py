"""What was said on one channel, searchable as text, with each character mapped back to a moment in the
recording so every finding can point at its evidence."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

PAUSE_BETWEEN_UTTERANCES = 0.6  # seconds of silence that end an utterance
# Split and strip: ASCII and full-width (Chinese IME) punctuation, quotes, brackets, ellipses, dashes.
# Written as escapes so an editor cannot silently swap the full-width marks for ASCII ones.
_PUNCTUATION = re.compile(
    "[\\s,.!?;:'\"()\\[\\]<>~\\-"
    "\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a\uff08\uff09\u300a\u300b\u3008\u3009\u3010\u3011"
    "\u201c\u201d\u2018\u2019\u2026\u2014\u2013\u00b7\uff5e]+"
)
_SPOKEN = re.compile(f"(?:(?!{_PUNCTUATION.pattern}).)+")  # a run between punctuation marks
# Vosk marks a stretch it could not recognise with this token; it is not something anybody said.
_UNKNOWN_WORDS = {"[unk]", "<unk>"}
NEAR_SYLLABLE_CREDIT = 0.6  # 您/你, 心/星, 是/四: heard nearly alike, so most of a match
CHANNEL_NAMES = {0: "来电人", 1: "值班人员"}


@dataclass(frozen=True)
class Evidence:
    """A piece of what was said, where it is in the recording, and on which channel."""

    text: str
    start: float
    end: float
    channel: int

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": round(self.start, 2), "end": round(self.end, 2), "channel": self.channel}


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech between pauses (or punctuation); `first`/`last` are its character positions in
    the channel's searchable text."""

    text: str
    start: float
    end: float
    first: int = 0
    last: int = 0


class ChannelSpeech:
    """One channel's text (a person's correction when there is one) with character → time."""

    def __init__(self, channel: int, text: str, times: list[tuple[float, float]], utterances: list[Utterance]):
        self.channel = channel
        self.text = text
        self._times = times
        self.utterances = utterances

    @classmethod
    def from_words(cls, channel: int, words: list[dict[str, Any]], corrected: str | None = None) -> ChannelSpeech:
        """From Vosk's timed words; a corrected text is spread over the same stretch of the recording."""
        if corrected and corrected.strip():
            return cls._from_corrected(channel, corrected.strip(), words)
        text, times, utterances = "", [], []
        current: list[dict[str, Any]] = []
        first = 0
        for word in words:
            token = str(word["word"])
            token = "" if token.lower() in _UNKNOWN_WORDS else _PUNCTUATION.sub("", token)
            if not token:
                continue
            if current and float(word["start"]) - float(current[-1]["end"]) >= PAUSE_BETWEEN_UTTERANCES:
                utterances.append(_utterance(current, first, len(text)))
                current, first = [], len(text)
            current.append({**word, "word": token})
            text += token
            times += [(float(word["start"]), float(word["end"]))] * len(token)
        if current:
            utterances.append(_utterance(current, first, len(text)))
        return cls(channel, text, times, utterances)

    @classmethod
    def _from_corrected(cls, channel: int, corrected: str, words: list[dict[str, Any]]) -> ChannelSpeech:
        begin = float(words[0]["start"]) if words else 0.0
        finish = float(words[-1]["end"]) if words else 0.0
        length = max(len(corrected), 1)

        def at(index: int) -> float:
            return begin + (finish - begin) * index / length

        # Search runs on the text without punctuation; keep where each of its characters was in the correction.
        kept = [i for i, ch in enumerate(corrected) if not _PUNCTUATION.fullmatch(ch)]
        searchable = {index: position for position, index in enumerate(kept)}
        utterances = []
        for match in _SPOKEN.finditer(corrected):
            first = searchable[match.start()]
            utterances.append(
                Utterance(match.group(), at(match.start()), at(match.end()), first, first + len(match.group()))
            )
        times = [(at(i), at(i + 1)) for i in kept]
        return cls(channel, "".join(corrected[i] for i in kept), times, utterances)

    def evidence(self, start_index: int, end_index: int) -> Evidence:
        """The text between two character positions, with its time span."""
        if not self._times:
            return Evidence(self.text[start_index:end_index], 0.0, 0.0, self.channel)
        first = self._times[min(start_index, len(self._times) - 1)]
        last = self._times[min(max(end_index - 1, start_index), len(self._times) - 1)]
        return Evidence(self.text[start_index:end_index], first[0], last[1], self.channel)

    def find_all(self, phrase: str) -> Iterator[Evidence]:
        """Every exact occurrence of `phrase`."""
        for start in self.positions(phrase):
            yield self.evidence(start, start + len(phrase))

    def positions(self, phrase: str) -> Iterator[int]:
        """Where each (non-overlapping) occurrence of `phrase` starts in the text."""
        start = self.text.find(phrase)
        while phrase and start >= 0:
            yield start
            start = self.text.find(phrase, start + len(phrase))

    def utterance_at(self, index: int) -> Utterance | None:
        """The utterance holding character `index`."""
        return next((u for u in self.utterances if u.first <= index < u.last), None)

    def utterance_evidence(self, utterance: Utterance) -> Evidence:
        return Evidence(utterance.text, utterance.start, utterance.end, self.channel)


def _utterance(words: list[dict[str, Any]], first: int, last: int) -> Utterance:
    return Utterance(
        "".join(str(w["word"]) for w in words), float(words[0]["start"]), float(words[-1]["end"]), first, last
    )


@cache
def _readings(ch: str) -> frozenset[str]:
    """Every toneless pinyin reading of one character (polyphones such as 重 zhong/chong have several);
    anything that is not a Chinese character stands for itself."""
    from pypinyin import Style, pinyin

    return frozenset(reading.lower() for reading in pinyin(ch, style=Style.NORMAL, heteronym=True)[0])


_FOLDED_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("l", "n"))


@cache
def _folded(syllable: str) -> str:
    """A syllable with the distinctions ASR and accents most often lose: zh/z, ch/c, sh/s, l/n, and the
    nasal ending (您 nin / 你 ni, 星 xing / 心 xin)."""
    for long, short in _FOLDED_INITIALS:
        if syllable.startswith(long):
            syllable = short + syllable[len(long) :]
            break
    if len(syllable) > 2 and syllable.endswith("ng"):
        return syllable[:-2]
    if len(syllable) > 1 and syllable.endswith("n"):
        return syllable[:-1]
    return syllable


def _syllable_similarity(wanted: frozenset[str], heard: frozenset[str]) -> float:
    if wanted & heard:
        return 1.0
    if {_folded(w) for w in wanted} & {_folded(h) for h in heard}:
        return NEAR_SYLLABLE_CREDIT
    return 0.0


def _alignment_ratio(wanted: list[frozenset[str]], heard: list[frozenset[str]]) -> float:
    """2·(similarity of the best in-order alignment) / (total syllables) — difflib's ratio, with part credit
    for a nearly-alike syllable."""
    if not wanted and not heard:
        return 1.0
    previous = [0.0] * (len(heard) + 1)
    for w in wanted:
        row = [0.0]
        for j, h in enumerate(heard):
            row.append(max(previous[j + 1], row[j], previous[j] + _syllable_similarity(w, h)))
        previous = row
    return 2 * previous[-1] / (len(wanted) + len(heard))


def sounds_like(phrase: str, text: str, threshold: float = 0.75) -> tuple[float, int, int]:
    """How closely `phrase` is heard somewhere in `text`, comparing pinyin syllables so ASR homophones
    (佳园 for 家园) and near-homophones (你好 for 您好) still match: (best ratio, start, end) in character
    positions; start and end are -1 when the best is below `threshold`."""
    wanted = [_readings(ch) for ch in phrase]
    heard = [_readings(ch) for ch in text]
    best = (0.0, -1, -1)
    width = len(wanted)
    # The phrase's own length first, so a tie keeps the evidence to the words that match.
    for size in dict.fromkeys((width, max(width - 1, 1), width + 1)):
        for start in range(0, max(len(heard) - size + 1, 1)):
            ratio = _alignment_ratio(wanted, heard[start : start + size])
            if ratio > best[0]:
                best = (ratio, start, min(start + size, len(text)))
    return best if best[0] >= threshold else (best[0], -1, -1)

"""What was said on one channel, searchable as text, with each character mapped back to a moment in the
recording so every finding can point at its evidence."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache
from typing import Any

PAUSE_BETWEEN_UTTERANCES = 0.6  # seconds of silence that end an utterance
_PUNCTUATION = re.compile(r"[,。!?;、,.!?;\s]+")
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
    text: str
    start: float
    end: float


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
        for word in words:
            if current and float(word["start"]) - float(current[-1]["end"]) >= PAUSE_BETWEEN_UTTERANCES:
                utterances.append(_utterance(current))
                current = []
            current.append(word)
            token = str(word["word"])
            text += token
            times += [(float(word["start"]), float(word["end"]))] * len(token)
        if current:
            utterances.append(_utterance(current))
        return cls(channel, text, times, utterances)

    @classmethod
    def _from_corrected(cls, channel: int, corrected: str, words: list[dict[str, Any]]) -> ChannelSpeech:
        begin = float(words[0]["start"]) if words else 0.0
        finish = float(words[-1]["end"]) if words else 0.0
        length = max(len(corrected), 1)

        def at(index: int) -> float:
            return begin + (finish - begin) * index / length

        times = [(at(i), at(i + 1)) for i in range(len(corrected))]
        utterances, position = [], 0
        for piece in _PUNCTUATION.split(corrected):
            if piece:
                index = corrected.index(piece, position)
                position = index + len(piece)
                utterances.append(Utterance(piece, at(index), at(position)))
        speech = cls(channel, _PUNCTUATION.sub("", corrected), [], utterances)
        # Search runs on the text without punctuation; map it back to the corrected string's positions.
        kept = [i for i, ch in enumerate(corrected) if not _PUNCTUATION.fullmatch(ch)]
        speech._times = [times[i] for i in kept]
        return speech

    def evidence(self, start_index: int, end_index: int) -> Evidence:
        """The text between two character positions, with its time span."""
        if not self._times:
            return Evidence(self.text[start_index:end_index], 0.0, 0.0, self.channel)
        first = self._times[min(start_index, len(self._times) - 1)]
        last = self._times[min(max(end_index - 1, start_index), len(self._times) - 1)]
        return Evidence(self.text[start_index:end_index], first[0], last[1], self.channel)

    def find_all(self, phrase: str) -> Iterator[Evidence]:
        """Every exact occurrence of `phrase`."""
        start = self.text.find(phrase)
        while phrase and start >= 0:
            yield self.evidence(start, start + len(phrase))
            start = self.text.find(phrase, start + len(phrase))

    def utterance_evidence(self, utterance: Utterance) -> Evidence:
        return Evidence(utterance.text, utterance.start, utterance.end, self.channel)


def _utterance(words: list[dict[str, Any]]) -> Utterance:
    return Utterance("".join(str(w["word"]) for w in words), float(words[0]["start"]), float(words[-1]["end"]))


@cache
def _syllables(text: str) -> tuple[str, ...]:
    from pypinyin import lazy_pinyin

    return tuple(lazy_pinyin(text))


def sounds_like(phrase: str, text: str, threshold: float = 0.75) -> tuple[float, int, int]:
    """How closely `phrase` is heard somewhere in `text`, comparing pinyin syllables so ASR homophones
    (佳园 for 家园, 为你 for 为您) still match: (best ratio, start, end) in character positions."""
    target = _syllables(phrase)
    heard = [_syllables(ch)[0] if _syllables(ch) else ch for ch in text]
    best = (0.0, 0, 0)
    width = len(target)
    for size in {max(width - 1, 1), width, width + 1}:
        for start in range(0, max(len(heard) - size + 1, 1)):
            ratio = SequenceMatcher(None, target, heard[start:start + size]).ratio()
            if ratio > best[0]:
                best = (ratio, start, min(start + size, len(text)))
    return best if best[0] >= threshold else (best[0], -1, -1)

"""Live takes: μ-law frames decoded as they arrive by the decoder pool, with the real Korean model."""

from __future__ import annotations

import time

import pytest

from ivr.devphone.media_stream import mulaw_frames
from ivr.speech import live
from ivr.speech.engine import ChannelDecoder, LoadedModel, SpeechEngine, load_model
from ivr.speech.live import LivePool


@pytest.fixture(scope="module")
def engine(korean_model_path) -> SpeechEngine:
    """The process's model with spare recognisers of this module's own. A recycled recogniser keeps something of
    what it heard before (Reset does not undo Vosk's adaptation to the audio), so live and offline words are
    compared from the same history, whatever other modules decoded before (the words differed in 1 CI run of 5)."""
    shared = load_model(korean_model_path)
    return SpeechEngine(LoadedModel(shared.path, shared.sample_rate, shared.model))


@pytest.fixture
def pool(engine):
    pool = LivePool(lambda: engine, capacity=2, decoders=2)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def frames(audio_dir) -> list[bytes]:
    return mulaw_frames((audio_dir / "ko_8k.wav").read_bytes())


def feed_paced(take, frames, speed: float = 1.0) -> None:
    """Frames as a caller sends them: 20 ms of audio each 20 ms / speed."""
    began = time.monotonic()
    for index, frame in enumerate(frames):
        time.sleep(max(0.0, began + index * 0.02 / speed - time.monotonic()))
        assert take.feed(frame)


def shared_words(a: str, b: str) -> float:
    words = set(a.split())
    return len(words & set(b.split())) / max(len(words), 1)


def test_a_live_take_hears_what_the_downloaded_recording_says(pool, engine, frames, audio_dir):
    take = pool.open(("CA1", 1))
    assert take is not None
    feed_paced(take, frames)
    began = time.monotonic()
    heard = take.finish()
    assert heard is not None
    assert time.monotonic() - began < 1.5  # only the last chunk is left to decode at #
    assert heard.duration == pytest.approx(len(frames) * 0.02, abs=0.02)
    offline = engine.transcribe_audio(audio_dir / "ko_8k.wav")[0]
    # μ-law on the way loses a little: most words agree, with timings and confidences.
    assert shared_words(offline.raw_text, heard.raw_text) >= 0.5, (offline.raw_text, heard.raw_text)
    assert heard.words and all(0 <= w.conf <= 1 and w.end > w.start for w in heard.words)
    assert 0 < (heard.mean_confidence or 0) <= 1
    assert pool.find(("CA1", 1)) is None and pool.counts.finished == 1


def test_the_running_text_grows_while_the_caller_speaks(pool, frames):
    take = pool.open(("CA1", 1))
    for frame in frames[: len(frames) * 2 // 3]:
        take.feed(frame)
    deadline = time.monotonic() + 5
    while not take.partial_text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert take.partial_text
    take.finish()


def test_more_takes_than_the_pool_holds_are_declined_until_one_ends(pool, frames):
    first, second = pool.open(("CA1", 1)), pool.open(("CA2", 1))
    assert first and second
    assert pool.open(("CA3", 1)) is None
    assert pool.open(("CA1", 1)) is None  # a take is open once
    assert pool.counts.declined == 2
    first.feed(frames[0])
    first.finish()
    assert pool.open(("CA3", 1)) is not None


def test_a_stream_that_ends_before_the_record_action_keeps_its_text(pool, frames):
    take = pool.open(("CA1", 1))
    feed_paced(take, frames)
    take.end()  # Twilio's stop arrives first (e.g. the caller hung up)
    assert not take.feed(frames[0])
    assert pool.find(("CA1", 1)) is take
    heard = take.finish()
    assert heard is not None and heard.raw_text


def test_a_take_whose_audio_waits_too_long_for_a_decoder_is_given_up(pool, frames, monkeypatch):
    monkeypatch.setattr(live, "MAX_LAG_SECONDS", 0.2)
    original = ChannelDecoder.feed

    def slow_feed(self, pcm):
        time.sleep(0.3)  # a decoder far slower than the caller
        original(self, pcm)

    monkeypatch.setattr(ChannelDecoder, "feed", slow_feed)
    take = pool.open(("CA1", 1))
    fed = [take.feed(frame) for frame in frames[:60]]
    deadline = time.monotonic() + 5
    while take.state != "given up" and time.monotonic() < deadline:
        take.feed(frames[0])
        time.sleep(0.05)
    assert take.state == "given up" and "waited" in take.reason
    assert all(fed[:8]) and not take.feed(frames[0])
    assert take.finish() is None  # the download path transcribes it
    assert pool.counts.given_up == 1


def test_the_record_action_does_not_wait_long_for_a_busy_decoder(pool, frames, monkeypatch):
    original = ChannelDecoder.finish

    def slow_finish(self):
        time.sleep(1.0)
        return original(self)

    monkeypatch.setattr(ChannelDecoder, "finish", slow_finish)
    take = pool.open(("CA1", 1))
    for frame in frames[:20]:
        take.feed(frame)
    began = time.monotonic()
    assert take.finish(timeout=0.2) is None
    assert time.monotonic() - began < 0.5
    assert take.state == "given up"


def test_an_empty_take_is_discarded_without_counting_as_given_up(pool, frames):
    take = pool.open(("CA1", 1))
    take.feed(frames[0])
    take.discard()
    assert pool.find(("CA1", 1)) is None and pool.counts.given_up == 0
    assert not take.feed(frames[1])


def test_when_the_decoders_fall_behind_the_newest_take_gives_way(engine, frames, monkeypatch):
    monkeypatch.setattr(live, "SHED_AFTER_SECONDS", 0.2)
    original = ChannelDecoder.feed

    def slow_feed(self, pcm):
        time.sleep(0.1)  # three takes on one decoder at 0.1 s a 0.16 s chunk: more than it keeps up with
        original(self, pcm)

    monkeypatch.setattr(ChannelDecoder, "feed", slow_feed)
    pool = LivePool(lambda: engine, capacity=3, decoders=1)
    takes = [pool.open((f"CA{n}", 1)) for n in range(3)]
    began = time.monotonic()
    for index, frame in enumerate(frames[:100]):
        time.sleep(max(0.0, began + index * 0.02 - time.monotonic()))
        for take in takes:
            take.feed(frame)
    assert takes[2].state == "given up" and "gave way" in takes[2].reason
    assert [take.state for take in takes[:2]] == ["live", "live"]
    pool.close()

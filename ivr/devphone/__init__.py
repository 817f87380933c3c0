"""The dev phone: an emulator of Twilio's side of inbound voice calls, for `ivr call` and the tests.

`emulator` follows the call verb by verb; `callers` is who is on the phone and the steps they take;
`results` is what a call reports; `audio` the call's WAV audio; `recording_server` serves recordings
as Twilio does; `transport` carries the webhooks to the app. The package exports what a test needs:

from ivr.devphone import TwilioEmulator, FlaskClientTransport, RecordingServer, Message, SILENCE

with RecordingServer(account_sid, auth_token) as recordings:
    phone = TwilioEmulator(FlaskClientTransport(app, public_url), public_url, account_sid,
                           auth_token, recordings)
    result = phone.call(["1", "3*2*501#", Message("tests/fixtures/audio/hello.wav")])
"""

from ivr.devphone.audio import write_tone_wav
from ivr.devphone.callers import (
    HANGUP,
    SILENCE,
    Caller,
    CallerScript,
    DialOutcome,
    DialRequest,
    GatherRequest,
    Heard,
    InteractiveCaller,
    Message,
    RecordRequest,
    ScriptMismatch,
    Signal,
    Speech,
)
from ivr.devphone.emulator import SharedKey, TwilioEmulator, new_sid
from ivr.devphone.recording_server import RecordingServer
from ivr.devphone.results import CallResult, Exchange, StreamRecord
from ivr.devphone.transport import FlaskClientTransport, HttpTransport, Reply, Transport, TransportError

__all__ = [
    "HANGUP",
    "SILENCE",
    "CallResult",
    "Caller",
    "CallerScript",
    "DialOutcome",
    "DialRequest",
    "Exchange",
    "FlaskClientTransport",
    "GatherRequest",
    "Heard",
    "HttpTransport",
    "InteractiveCaller",
    "Message",
    "RecordRequest",
    "RecordingServer",
    "Reply",
    "ScriptMismatch",
    "SharedKey",
    "Signal",
    "Speech",
    "StreamRecord",
    "Transport",
    "TransportError",
    "TwilioEmulator",
    "new_sid",
    "write_tone_wav",
]

"""The dev phone: an emulator of Twilio's side of inbound voice calls, for `ivr call` and the tests.

from ivr.devphone import TwilioEmulator, FlaskClientTransport, RecordingServer, Message, SILENCE

with RecordingServer(account_sid, auth_token) as recordings:
    phone = TwilioEmulator(FlaskClientTransport(app, public_url), public_url, account_sid,
                           auth_token, recordings)
    result = phone.call(["1", "3*2*501#", Message("tests/fixtures/audio/hello.wav")])
"""

from ivr.devphone.emulator import (
    HANGUP,
    SILENCE,
    Caller,
    CallerScript,
    CallResult,
    DialOutcome,
    DialRequest,
    Exchange,
    GatherRequest,
    Heard,
    InteractiveCaller,
    Message,
    RecordRequest,
    ScriptMismatch,
    SharedKey,
    Signal,
    Speech,
    TwilioEmulator,
    new_sid,
    write_tone_wav,
)
from ivr.devphone.recording_server import RecordingServer
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
    "Transport",
    "TransportError",
    "TwilioEmulator",
    "new_sid",
    "write_tone_wav",
]

"""Set up the Twilio account: `ivr twilio configure-number` and `ivr twilio reconcile`.

The number's voice webhook, call-status callback and fallback are set through Twilio's REST API
(IncomingPhoneNumbers), and what Twilio stores is read back and compared with what was sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from ivr.telephony import webhook_path

if TYPE_CHECKING:
    from twilio.rest import Client

    from ivr.cli_state import CliState

# E.164: a "+", a country code that does not start with 0, at most 15 digits in all.
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# Separators people type when copying a number ("+86 10 1234-5678", "+1 (415) 555-0100").
NUMBER_SEPARATORS = re.compile(r"[\s\-()]")

# The webhooks set on the number itself (Twilio's field → the step's path); Twilio calls them with POST and
# reaches every other step through the TwiML's action URLs.
WEBHOOK_PATHS = {
    "voice_url": webhook_path("voice"),
    "status_callback": webhook_path("status"),
    "voice_fallback_url": webhook_path("fallback"),
}
WEBHOOK_METHOD = "POST"


class TwilioSetupError(Exception):
    """Twilio could not be set up; the message says what to do about it."""


class WebhookMismatchError(TwilioSetupError):
    """Twilio accepted the update but reports different webhooks than the ones sent."""


@dataclass(frozen=True)
class ConfiguredNumber:
    """A phone number's webhooks as Twilio reports them after the update."""

    sid: str
    phone_number: str
    voice_url: str | None
    voice_method: str | None
    status_callback: str | None
    status_callback_method: str | None
    voice_fallback_url: str | None
    voice_fallback_method: str | None


def normalise_phone_number(phone_number: str) -> str:
    """The number in E.164 (`+861012345678`), with spaces, dashes and brackets removed."""
    number = NUMBER_SEPARATORS.sub("", phone_number)
    if not E164.match(number):
        raise TwilioSetupError(
            f"{phone_number!r} is not an E.164 phone number: write it with + and the country code, e.g. +861012345678"
        )
    return number


def check_public_url(public_url: str, *, allow_http: bool = False) -> str:
    """The public base URL without a trailing slash; https unless `allow_http`."""
    base = public_url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TwilioSetupError(f"the public URL must be a URL like https://ivr.example.com, not {base!r}")
    if parts.query or parts.fragment:
        raise TwilioSetupError(f"the public URL must not have a query or fragment: {base!r}")
    if parts.scheme != "https" and not allow_http:
        raise TwilioSetupError(
            f"the public URL {base!r} is not https: Twilio must reach the line over https in production "
            "(pass --allow-http only for a test number pointed at a tunnel or test server)"
        )
    return base


def webhook_urls(public_url: str) -> dict[str, str]:
    """The three webhook URLs Twilio should call for `public_url` (all with POST)."""
    base = public_url.rstrip("/")
    return {name: base + path for name, path in WEBHOOK_PATHS.items()}


@dataclass(frozen=True)
class _RefusedRequest:
    """What Twilio answered to a request it refused: HTTP status, Twilio error code, message."""

    status: int
    code: int | None
    message: str


def _refused_request(exc: TwilioException) -> _RefusedRequest | None:
    """The refusal inside a Twilio exception, or None if the exception is not an HTTP answer.

    Updates raise TwilioRestException, but reading a list page that is not 200 raises a plain
    TwilioException("Unable to fetch page", response) with the raw response (twilio-python 9).
    """
    if isinstance(exc, TwilioRestException):
        return _RefusedRequest(exc.status, exc.code, exc.msg)
    response: Any = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return None
    try:
        body = json.loads(response.text)
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("code")
    return _RefusedRequest(status, code if isinstance(code, int) else None, str(body.get("message", "")))


def _explain_refusal(refused: _RefusedRequest, account_sid: str, phone_number: str) -> str:
    """A message for a refused Twilio request that says what to check."""
    detail = f"HTTP {refused.status}" + (f", Twilio error {refused.code}" if refused.code else "")
    if refused.status == 401:
        return (
            f"Twilio rejected the credentials ({detail}): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
            "(the live Auth Token of that account, not test credentials)"
        )
    if refused.status == 403:
        return (
            f"Twilio refused access ({detail}: {refused.message}): the account {account_sid} may be "
            "suspended, or the credentials lack permission to change phone numbers"
        )
    if refused.status == 404:
        return (
            f"Twilio could not find {phone_number} on account {account_sid} ({detail}): the number may "
            "have been released or moved to another account; check it in the Twilio console"
        )
    if refused.status >= 500:
        return f"Twilio had an internal error ({detail}: {refused.message}); try again in a few minutes"
    return f"Twilio refused the request ({detail}: {refused.message})"


def _mismatches(sent: dict[str, str], stored: ConfiguredNumber) -> list[str]:
    """Each field Twilio reports differently from what was sent, as 'field: sent X, Twilio has Y'."""
    return [
        f"{field}: sent {value!r}, Twilio has {getattr(stored, field)!r}"
        for field, value in sent.items()
        if getattr(stored, field) != value
    ]


def configure_number(
    client: Client, phone_number: str, public_url: str, *, allow_http: bool = False
) -> ConfiguredNumber:
    """Set the voice, status and fallback webhooks of `phone_number` to this server's URLs.

    Raises TwilioSetupError (with what to do) when the input is unusable, Twilio refuses or cannot be
    reached, the account does not own the number, or Twilio stores something other than what was sent.
    """
    number = normalise_phone_number(phone_number)
    urls = webhook_urls(check_public_url(public_url, allow_http=allow_http))
    sent = {
        "voice_url": urls["voice_url"],
        "voice_method": WEBHOOK_METHOD,
        "status_callback": urls["status_callback"],
        "status_callback_method": WEBHOOK_METHOD,
        "voice_fallback_url": urls["voice_fallback_url"],
        "voice_fallback_method": WEBHOOK_METHOD,
    }
    account_sid = client.account_sid
    try:
        # PhoneNumber is a pattern filter on Twilio's side, so keep only the exact match.
        records = client.incoming_phone_numbers.list(phone_number=number, limit=2)
        owned = [record for record in records if record.phone_number == number]
        if not owned:
            raise TwilioSetupError(
                f"{number} is not a phone number of Twilio account {account_sid}: check the number, and "
                "that TWILIO_ACCOUNT_SID is the account (or subaccount) that owns it"
            )
        record = owned[0]
        _refuse_overriding_routes(record)
        updated = record.update(**sent)
    except TwilioException as exc:
        refused = _refused_request(exc)
        if refused is None:
            raise TwilioSetupError(f"the Twilio client failed: {exc}") from exc
        raise TwilioSetupError(_explain_refusal(refused, account_sid, number)) from exc
    except requests.RequestException as exc:
        raise TwilioSetupError(
            f"could not reach Twilio ({type(exc).__name__}): check this machine's internet connection "
            "or proxy, then run the command again"
        ) from exc

    stored = ConfiguredNumber(
        sid=updated.sid,
        phone_number=updated.phone_number,
        voice_url=updated.voice_url,
        voice_method=updated.voice_method,
        status_callback=updated.status_callback,
        status_callback_method=updated.status_callback_method,
        voice_fallback_url=updated.voice_fallback_url,
        voice_fallback_method=updated.voice_fallback_method,
    )
    differences = _mismatches(sent, stored)
    if differences:
        raise WebhookMismatchError(
            f"Twilio did not store the webhooks that were sent for {number} ({stored.sid}): "
            + "; ".join(differences)
            + ". Check the number's voice configuration in the Twilio console and run the command again."
        )
    return stored


def _refuse_overriding_routes(record: Any) -> None:
    """Refuse a number whose calls go to a TwiML App or SIP trunk: Twilio would ignore the voice URLs."""
    if record.trunk_sid:
        raise TwilioSetupError(
            f"{record.phone_number} is attached to SIP trunk {record.trunk_sid}, so Twilio ignores its voice "
            "URLs: remove it from the trunk in the Twilio console first"
        )
    if record.voice_application_sid:
        raise TwilioSetupError(
            f"{record.phone_number} sends calls to TwiML App {record.voice_application_sid}, so Twilio "
            "ignores its voice URLs: switch its voice configuration to 'Webhook' in the Twilio console first"
        )


@click.group("twilio")
def twilio() -> None:
    """Set up the Twilio account for this line."""


@twilio.command("configure-number")
@click.argument("phone_number")
@click.option("--public-url", help="Base URL Twilio calls (default: IVR_PUBLIC_URL).")
@click.option("--allow-http", is_flag=True, help="Accept an http public URL (test numbers only).")
@click.pass_obj
def configure_number_command(state: CliState, phone_number: str, public_url: str | None, allow_http: bool) -> None:
    """Point PHONE_NUMBER (E.164, e.g. +861012345678) at this server's voice webhooks."""
    from ivr.twilio_rest import twilio_client

    settings = state.settings
    client = twilio_client(settings)
    try:
        configured = configure_number(client, phone_number, public_url or settings.public_url, allow_http=allow_http)
    except TwilioSetupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{configured.phone_number} ({configured.sid}) now calls this server:")
    click.echo(f"  voice:    {configured.voice_method} {configured.voice_url}")
    click.echo(f"  status:   {configured.status_callback_method} {configured.status_callback}")
    click.echo(f"  fallback: {configured.voice_fallback_method} {configured.voice_fallback_url}")


@twilio.command("reconcile")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="List Twilio's recordings created on or after this day (GMT, YYYY-MM-DD); "
    "default: since the last run, or the last two days.",
)
@click.option(
    "--settle",
    "settle_minutes",
    type=click.FloatRange(min=0),
    default=10,
    show_default=True,
    help="Leave recordings younger than this many minutes to the live webhooks (0: import them too).",
)
@click.pass_obj
def reconcile_command(state: CliState, since: datetime | None, settle_minutes: float) -> None:
    """Import the recordings Twilio holds that the line never heard of (as recovered tickets)."""
    from ivr.jobs import JobContext, JobQueue
    from ivr.recordings.reconcile import ReconcileError, reconcile_recordings

    settings = state.settings
    # A queue bound to the database, so each download job is handed to the worker as its import commits.
    JobQueue(settings, state.database)
    try:
        report = reconcile_recordings(
            JobContext(settings, state.database),
            since=since.date() if since else None,
            settle=timedelta(minutes=settle_minutes),
        )
    except ReconcileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Twilio recordings created since {report.since.isoformat()}: {report.listed} listed, {report.known} "
        f"already here, {report.not_completed} not completed, {report.too_recent} too recent (next run)"
    )
    for item in report.imported:
        caller = item.from_number or "unknown caller"
        if item.ticket_number:
            click.echo(
                f"imported {item.recording_sid} (call {item.call_sid}, {caller}): recovered ticket {item.ticket_number}"
            )
        else:
            click.echo(f"imported {item.recording_sid} (call {item.call_sid}, {caller}): transfer recording")
    if report.imported:
        click.echo(f"{len(report.imported)} recording(s) imported; their downloads are queued for the worker.")
    else:
        click.echo("nothing to import: the line knows every completed recording Twilio listed.")

"""`ivr twilio configure-number` against replayed Twilio REST exchanges (tests/fixtures/twilio_api)."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from click.testing import CliRunner, Result

from ivr.cli import main
from ivr.cli_state import CliState
from ivr.config import Settings
from ivr.twilio_number import TwilioSetupError, check_public_url, normalise_phone_number, webhook_urls
from tests.factories import replay

FIXTURES = Path(__file__).parent / "fixtures" / "twilio_api"
NUMBER = "+861012345678"
NUMBER_SID = "PN5e1c6a0b9d4f4e2a8c7b3d2e1f0a9b8c"
LIST_URL = "https://api.twilio.com/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json"
UPDATE_URL = "https://api.twilio.com/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers/" + NUMBER_SID + ".json"


def configure(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(main, ["twilio", "configure-number", *args], obj=CliState(settings))


def sent_form(call: responses.Call) -> dict[str, str]:
    """The form body of a sent request, one value per field (a repeated field fails the test)."""
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    fields = parse_qs(text, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in fields.values()), fields
    return {name: values[0] for name, values in fields.items()}


def basic_auth_user(call: responses.Call) -> tuple[str, str]:
    scheme, _, encoded = call.request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return user, password


def test_configure_number_points_the_number_at_this_server(settings, twilio_api):
    replay(twilio_api, "list_number.json", "update_number.json")

    result = configure(settings, "+86 10 1234-5678")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{NUMBER} ({NUMBER_SID}) now calls this server:",
        "  voice:    POST https://ivr.example.test/twilio/voice",
        "  status:   POST https://ivr.example.test/twilio/status",
        "  fallback: POST https://ivr.example.test/twilio/fallback",
    ]
    lookup, update = twilio_api.calls
    account = settings.twilio_account_sid
    assert lookup.request.method == "GET"
    assert urlsplit(lookup.request.url).path == urlsplit(LIST_URL.format(sid=account)).path
    assert parse_qs(urlsplit(lookup.request.url).query) == {"PhoneNumber": [NUMBER], "PageSize": ["2"]}
    assert update.request.method == "POST"
    assert update.request.url == UPDATE_URL.format(sid=account)
    assert sent_form(update) == {
        "VoiceUrl": "https://ivr.example.test/twilio/voice",
        "VoiceMethod": "POST",
        "StatusCallback": "https://ivr.example.test/twilio/status",
        "StatusCallbackMethod": "POST",
        "VoiceFallbackUrl": "https://ivr.example.test/twilio/fallback",
        "VoiceFallbackMethod": "POST",
    }
    for call in (lookup, update):
        assert basic_auth_user(call) == (account, settings.twilio_auth_token)


def test_number_not_on_the_account_is_refused_without_an_update(settings, twilio_api):
    replay(twilio_api, "list_empty.json")

    result = configure(settings, NUMBER)

    assert result.exit_code == 1
    assert f"{NUMBER} is not a phone number of Twilio account {settings.twilio_account_sid}" in result.stderr
    assert "TWILIO_ACCOUNT_SID" in result.stderr
    assert [call.request.method for call in twilio_api.calls] == ["GET"]
    assert result.stdout == ""


def test_bad_credentials_say_which_settings_to_check(settings, twilio_api):
    replay(twilio_api, "list_401_authenticate.json")

    result = configure(settings, NUMBER)

    assert result.exit_code == 1
    assert "Twilio rejected the credentials (HTTP 401, Twilio error 20003)" in result.stderr
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" in result.stderr
    assert settings.twilio_auth_token not in result.output
    assert len(twilio_api.calls) == 1


def test_number_released_before_the_update_is_reported(settings, twilio_api):
    replay(twilio_api, "list_number.json", "update_404_not_found.json")

    result = configure(settings, NUMBER)

    assert result.exit_code == 1
    assert "HTTP 404, Twilio error 20404" in result.stderr
    assert "released or moved to another account" in result.stderr


def test_twilio_storing_a_different_url_is_an_error(settings, twilio_api):
    replay(twilio_api, "list_number.json", "update_number_other_voice_url.json")

    result = configure(settings, NUMBER)

    assert result.exit_code == 1
    assert (
        "voice_url: sent 'https://ivr.example.test/twilio/voice', "
        "Twilio has 'https://old-ivr.example.test/twilio/voice'"
    ) in result.stderr
    # Only the field that differs is named.
    assert "status_callback:" not in result.stderr
    assert "now calls this server" not in result.output


def test_number_routed_to_a_twiml_app_is_refused_before_changing_it(settings, twilio_api):
    replay(twilio_api, "list_number_on_twiml_app.json")

    result = configure(settings, NUMBER)

    assert result.exit_code == 1
    assert "TwiML App AP9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f" in result.stderr
    assert [call.request.method for call in twilio_api.calls] == ["GET"]


def test_unreachable_twilio_says_so(settings, twilio_api):
    twilio_api.add(
        responses.GET,
        LIST_URL.format(sid=settings.twilio_account_sid),
        body=requests.ConnectionError("Failed to resolve 'api.twilio.com'"),
    )

    result = configure(settings, NUMBER)

    assert result.exit_code == 1
    assert "could not reach Twilio (ConnectionError)" in result.stderr
    assert "internet connection" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--public-url", "http://ivr.example.test"],
        ["--public-url", "ivr.example.test"],
        ["--public-url", "https://ivr.example.test/?next=1"],
    ],
)
def test_unusable_public_url_is_refused_before_calling_twilio(settings, twilio_api, args):
    result = configure(settings, NUMBER, *args)

    assert result.exit_code == 1
    assert "public URL" in result.stderr
    assert len(twilio_api.calls) == 0


def test_http_public_url_from_settings_is_refused(settings, twilio_api):
    result = configure(settings.replace(public_url="http://127.0.0.1:5000"), NUMBER)

    assert result.exit_code == 1
    assert "is not https" in result.stderr
    assert "--allow-http" in result.stderr
    assert len(twilio_api.calls) == 0


@pytest.mark.parametrize("typed", ["01012345678", "861012345678", "+0861012345678", "+86 10 ABCD", "+86"])
def test_non_e164_number_is_refused_before_calling_twilio(settings, twilio_api, typed):
    result = configure(settings, typed)

    assert result.exit_code == 1
    assert "is not an E.164 phone number" in result.stderr
    assert len(twilio_api.calls) == 0


def test_help_needs_no_configuration():
    result = CliRunner().invoke(main, ["twilio", "configure-number", "--help"], obj=CliState())

    assert result.exit_code == 0
    assert "--allow-http" in result.output


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+861012345678", NUMBER),
        ("+86 10 1234 5678", NUMBER),
        ("+86-10-1234-5678", NUMBER),
        ("+1 (415) 555-0100", "+14155550100"),
    ],
)
def test_normalise_phone_number(typed, expected):
    assert normalise_phone_number(typed) == expected


def test_webhook_urls_join_the_public_url():
    assert webhook_urls("https://ivr.example.test/line/") == {
        "voice_url": "https://ivr.example.test/line/twilio/voice",
        "status_callback": "https://ivr.example.test/line/twilio/status",
        "voice_fallback_url": "https://ivr.example.test/line/twilio/fallback",
    }


def test_http_public_url_only_with_allow_http():
    with pytest.raises(TwilioSetupError, match="not https"):
        check_public_url("http://tunnel.example.test")
    assert check_public_url("http://tunnel.example.test/", allow_http=True) == "http://tunnel.example.test"


# --- IVR_TWILIO_API_URL ----------------------------------------------------------------------------------

GATEWAY = "https://twilio-gateway.example.test"


def replay_at(mock: responses.RequestsMock, base: str, *names: str) -> None:
    """Like tests.factories.replay, with the recorded api.twilio.com exchanges answered at `base`."""
    import json

    from responses import matchers

    for name in names:
        exchange = json.loads((FIXTURES / name).read_text())
        url = urlsplit(exchange["request"]["url"].replace("https://api.twilio.com", base))
        headers = dict(exchange["response"]["headers"])
        mock.add(
            exchange["request"]["method"],
            url._replace(query="").geturl(),
            body=json.dumps(exchange["response"]["body"]),
            status=exchange["response"]["status"],
            content_type=headers.pop("Content-Type"),
            headers=headers,
            match=[matchers.query_string_matcher(url.query)],
        )


def test_configure_number_talks_to_the_configured_twilio_api_url(settings, twilio_api):
    replay_at(twilio_api, GATEWAY, "list_number.json", "update_number.json")

    result = configure(settings.replace(twilio_api_url=GATEWAY), NUMBER)

    assert result.exit_code == 0, result.output
    assert [urlsplit(call.request.url).netloc for call in twilio_api.calls] == ["twilio-gateway.example.test"] * 2
    assert twilio_api.calls[1].request.url == UPDATE_URL.format(sid=settings.twilio_account_sid).replace(
        "https://api.twilio.com", GATEWAY
    )
    assert basic_auth_user(twilio_api.calls[1]) == (settings.twilio_account_sid, settings.twilio_auth_token)


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?x=1",
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/2010-04-01/Accounts/AC1/Messages.json?x=1",
        ),
        (
            "https://api.sydney.au1.twilio.com/2010-04-01/Calls.json",
            "https://proxy.example.test/twilio",
            "https://proxy.example.test/twilio/2010-04-01/Calls.json",
        ),
        ("https://messaging.twilio.com/v1/Services", "http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/Services"),
        # Not Twilio's hosts: left alone.
        (
            "https://api.twilio.com.evil.example/2010-04-01/x",
            "http://127.0.0.1:8000",
            "https://api.twilio.com.evil.example/2010-04-01/x",
        ),
        ("https://example.com/media.wav", "http://127.0.0.1:8000", "https://example.com/media.wav"),
    ],
)
def test_twilio_urls_are_moved_onto_the_configured_base(url, base, expected):
    from ivr.twilio_rest import rebase_url

    assert rebase_url(url, base) == expected


def test_the_default_base_is_twilio_s_own_client(settings):
    from twilio.http.http_client import TwilioHttpClient

    from ivr.twilio_rest import RebasingHttpClient, twilio_client

    default = twilio_client(settings)
    assert type(default.http_client) is TwilioHttpClient
    moved = twilio_client(settings.replace(twilio_api_url=GATEWAY))
    assert isinstance(moved.http_client, RebasingHttpClient) and moved.http_client.base_url == GATEWAY


def test_reconcile_help_needs_no_configuration():
    result = CliRunner().invoke(main, ["twilio", "reconcile", "--help"], obj=CliState())

    assert result.exit_code == 0
    assert "--since" in result.output

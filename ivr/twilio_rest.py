"""Twilio's REST API at IVR_TWILIO_API_URL: the one place every REST call of the project is built.

`twilio_client(settings)` is twilio-python's Client. With the default base (https://api.twilio.com) it is
Twilio's own HTTP client; with another base (the dev phone, a test double, a proxy) every request the client
would send to a `*.twilio.com` host goes to that base instead, with the same path and query. Either way its
requests give up after CLIENT_TIMEOUT seconds of silence.

`TwilioApi` makes the few plain GETs that reconciliation needs (Recordings and Calls of the 2010-04-01 API)
with basic auth, following Twilio's paging, and turns every failure into a `TwilioApiError` that says what
to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

if TYPE_CHECKING:
    from twilio.rest import Client

    from ivr.config import Settings

DEFAULT_API_URL = "https://api.twilio.com"
API_VERSION = "2010-04-01"
# Connect / read timeouts of the plain GETs: a worker thread must never hang on a silent peer.
REQUEST_TIMEOUT = (5.0, 60.0)
# The Client's, for connecting and for each wait on the answer (twilio-python takes one number): without it a
# silent Twilio would hold a job worker forever. Its calls (place a call, send an SMS, update a number) are
# single small requests Twilio answers in about a second.
CLIENT_TIMEOUT = 30.0
# A guard against a peer whose next_page_uri never ends (1000 pages of 1000 is a million items).
MAX_PAGES = 1000


def rebase_url(url: str, base_url: str) -> str:
    """`url` moved onto `base_url` when it points at a Twilio host (https://*.twilio.com); else unchanged."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not (host == "twilio.com" or host.endswith(".twilio.com")):
        return url
    base = urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, parts.fragment))


class RebasingHttpClient(TwilioHttpClient):
    """twilio-python's HTTP client, sending what it would send to *.twilio.com to another base URL."""

    def __init__(self, base_url: str, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return super().request(
            method, rebase_url(url, self.base_url), params, data, headers, auth, timeout, allow_redirects
        )


def twilio_client(settings: Settings) -> Client:
    """twilio-python's Client for the configured account, talking to IVR_TWILIO_API_URL, never waiting longer
    than CLIENT_TIMEOUT for a connection or the answer (requests' Timeout, a RequestException, when it does)."""
    from twilio.rest import Client

    if settings.twilio_api_url.rstrip("/") == DEFAULT_API_URL:
        http_client = TwilioHttpClient(timeout=CLIENT_TIMEOUT)
    else:
        http_client = RebasingHttpClient(settings.twilio_api_url, timeout=CLIENT_TIMEOUT)
    return Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)


class TwilioApiError(Exception):
    """A Twilio REST request failed; the message says what to check. `status` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class TwilioApi:
    """Plain GETs on Twilio's 2010-04-01 API at `base_url`, with the account's basic auth."""

    base_url: str
    account_sid: str
    auth_token: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioApi:
        return cls(settings.twilio_api_url.rstrip("/"), settings.twilio_account_sid, settings.twilio_auth_token)

    def account_path(self, resource: str) -> str:
        """`/2010-04-01/Accounts/{AccountSid}/{resource}`."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/{resource}"

    def url(self, uri: str) -> str:
        """The absolute URL of a Twilio URI (`/2010-04-01/...`, as Twilio writes them in its answers) on
        the base; an absolute Twilio URL is moved onto the base too."""
        if uri.startswith(("https://", "http://")):
            return rebase_url(uri, self.base_url)
        return self.base_url + uri

    def get(self, uri: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET one resource or page as JSON; raises TwilioApiError for anything but a 200 with a JSON object."""
        url = self.url(uri)
        where = urlsplit(self.base_url).netloc
        try:
            response = requests.get(
                url,
                params=params,
                auth=(self.account_sid, self.auth_token),
                timeout=REQUEST_TIMEOUT,
                headers={"Accept": "application/json"},
            )
        except requests.RequestException as exc:
            raise TwilioApiError(
                f"could not reach Twilio at {where} ({type(exc).__name__}): check this machine's internet "
                "connection or proxy, and IVR_TWILIO_API_URL"
            ) from exc
        if response.status_code != 200:
            raise _refusal(response, where)
        try:
            body = response.json()
        except ValueError as exc:
            raise TwilioApiError(f"Twilio at {where} answered {uri} with something that is not JSON") from exc
        if not isinstance(body, dict):
            raise TwilioApiError(f"Twilio at {where} answered {uri} with JSON that is not an object")
        return body

    def pages(self, uri: str, params: dict[str, str], items_key: str) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list resource, following `next_page_uri` (which carries the filters) to the end."""
        next_uri: str | None = uri
        query: dict[str, str] | None = params
        seen: set[str] = set()
        while next_uri:
            if next_uri in seen or len(seen) >= MAX_PAGES:
                raise TwilioApiError(f"Twilio's paging of {uri} does not end (page {next_uri} again or too many)")
            seen.add(next_uri)
            page = self.get(next_uri, query)
            items = page.get(items_key)
            if not isinstance(items, list):
                raise TwilioApiError(f"Twilio's answer to {next_uri} has no {items_key!r} list")
            yield [item for item in items if isinstance(item, dict)]
            following = page.get("next_page_uri")
            next_uri, query = (following, None) if isinstance(following, str) and following else (None, None)


def _refusal(response: requests.Response, where: str) -> TwilioApiError:
    """The error for a non-200 answer, with Twilio's error code and what to do."""
    try:
        body = json.loads(response.text)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("code") if isinstance(body.get("code"), int) else None
    message = str(body.get("message", "")).strip()
    status = response.status_code
    detail = f"HTTP {status}" + (f", Twilio error {code}" if code else "")
    if status == 401:
        text = (
            f"Twilio rejected the credentials ({detail}): check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
            "(the live Auth Token of that account, not test credentials)"
        )
    elif status == 403:
        text = f"Twilio refused access ({detail}: {message}): the account may be suspended or lack permission"
    elif status == 404:
        text = f"Twilio has no such resource ({detail}: {message})"
    elif status == 429 or status >= 500:
        text = f"Twilio at {where} is busy or failing ({detail}: {message}); it is tried again later"
    else:
        text = f"Twilio refused the request ({detail}: {message})"
    return TwilioApiError(text, status, code)

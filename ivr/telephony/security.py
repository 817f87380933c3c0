"""The signature guard: every /twilio/* request must be signed by Twilio for our public URL."""

from __future__ import annotations

import hmac
import logging

from flask import Response, request
from twilio.request_validator import RequestValidator

from ivr.runtime import current_settings
from ivr.telephony.twiml import websocket_url

log = logging.getLogger(__name__)


def signed_url() -> str:
    """The URL Twilio requested, as seen from outside: IVR_PUBLIC_URL + path + query (for the media
    WebSocket, the wss:// form of IVR_PUBLIC_URL that the TwiML gave Twilio)."""
    query = request.query_string.decode("latin-1")
    base = current_settings().public_url
    if request.headers.get("Upgrade", "").lower() == "websocket":
        base = websocket_url(base)
    return base + request.path + (f"?{query}" if query else "")


def require_twilio_signature() -> Response | None:
    """before_request hook: 403 unless X-Twilio-Signature matches (then nothing else runs)."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if signature:
        validator = RequestValidator(current_settings().twilio_auth_token)
        url = signed_url()
        # The URL exactly as configured first (one HMAC); then Twilio's own check, which also tries the
        # URL with and without the port (two more).
        if hmac.compare_digest(validator.compute_signature(url, request.form), signature) or validator.validate(
            url, request.form, signature
        ):
            return None
    log.warning("refused %s %s: %s Twilio signature", request.method, request.path, "bad" if signature else "no")
    return Response("invalid or missing X-Twilio-Signature\n", status=403, mimetype="text/plain")

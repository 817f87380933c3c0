"""Settings read from the environment (and an optional `.env`), validated once at start-up."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ivr.followup.windows import DEFAULT_CALL_WINDOWS, CallWindowError, call_calendar

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = REPO_ROOT / "models"  # where models live when IVR_MODELS_DIR is unset (contents git-ignored)

ENVIRONMENTS = ("production", "development", "test")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says what to set."""


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Everything the app, the worker and the CLI need, resolved to concrete values."""

    env: str
    instance_dir: Path
    database_url: str
    recordings_dir: Path
    public_url: str
    property_name: str
    duty_numbers: tuple[str, ...]
    recording_hosts: tuple[str, ...]
    redis_url: str | None
    twilio_account_sid: str
    twilio_auth_token: str
    secret_key: str
    timezone: str = "Asia/Shanghai"
    huey_path: Path | None = None
    speech_model: str | None = None  # IVR_VOSK_MODEL: a model name under models_dir, or a path
    models_dir: Path = DEFAULT_MODELS_DIR
    sms_from: str | None = None  # IVR_SMS_FROM: the Twilio number SMS to managers are sent from
    twilio_api_url: str = "https://api.twilio.com"  # IVR_TWILIO_API_URL: base of every Twilio REST call
    max_recording_bytes: int = 256 * 1024 * 1024  # IVR_MAX_RECORDING_BYTES: larger downloads are refused
    db_timeout_seconds: float = 2.0  # IVR_DB_TIMEOUT: longest wait for a lock or a connection
    trusted_proxies: int = 0  # IVR_TRUSTED_PROXIES: reverse proxies in front whose X-Forwarded-* are believed
    live_streams: int = 0  # IVR_LIVE_STREAMS: takes transcribed live at once (0: only after the download)
    read_back_min_confidence: float = 0.0  # IVR_READ_BACK_MIN_CONFIDENCE: below it, a summary is read back
    call_windows: str = "09:00-11:30,13:30-17:30,19:30-20:30"  # IVR_CALL_WINDOWS: when residents may be called
    call_days_off: str = ""  # IVR_CALL_DAYS_OFF: weekdays and dates no resident is called
    follow_up_delay_minutes: int = 0  # IVR_FOLLOW_UP_DELAY_MINUTES: a follow-up call waits this long after the resolve
    warnings: tuple[str, ...] = field(default=())

    @property
    def debug(self) -> bool:
        return self.env != "production"

    def as_flask_config(self) -> dict[str, object]:
        """The subset Flask itself reads, plus the settings object under IVR."""
        return {"SECRET_KEY": self.secret_key, "IVR": self}

    @property
    def spool_dir(self) -> Path:
        """Where webhooks that could not reach the database wait to be replayed."""
        return self.instance_dir / "spool"

    def replace(self, **changes: object) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def _positive_number(environ: Mapping[str, str], name: str, default: float, kind: type) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__} number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {raw!r}")
    return float(value)


MAX_TRUSTED_PROXIES = 5


def _trusted_proxies(environ: Mapping[str, str]) -> int:
    """IVR_TRUSTED_PROXIES: how many reverse proxies stand in front (0: X-Forwarded-* are ignored)."""
    raw = environ.get("IVR_TRUSTED_PROXIES", "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > MAX_TRUSTED_PROXIES:
        raise ConfigError(
            f"IVR_TRUSTED_PROXIES must be a whole number from 0 to {MAX_TRUSTED_PROXIES} "
            f"(the reverse proxies in front of the line), not {raw!r}"
        )
    return int(raw)


MAX_FOLLOW_UP_DELAY_MINUTES = 7 * 24 * 60  # the standard follows complaints up weekly


def _follow_up_delay(environ: Mapping[str, str]) -> int:
    """IVR_FOLLOW_UP_DELAY_MINUTES: how long after a ticket is resolved (or a complaint replied to) its follow-up
    call may be placed, e.g. 1440 to let the resident live with a repair for a day first; 0: at once."""
    raw = environ.get("IVR_FOLLOW_UP_DELAY_MINUTES", "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > MAX_FOLLOW_UP_DELAY_MINUTES:
        raise ConfigError(
            f"IVR_FOLLOW_UP_DELAY_MINUTES must be a whole number of minutes from 0 to {MAX_FOLLOW_UP_DELAY_MINUTES} "
            f"(a week), not {raw!r}"
        )
    return int(raw)


def default_live_streams() -> int:
    """Live takes one machine decodes in real time beside the webhooks: measured with the Korean model on
    2 cores (scripts/bench_live_streams.py, README "Live transcription"), scaled by the cores."""
    return LIVE_STREAMS_PER_CORE * (os.cpu_count() or 1)


LIVE_STREAMS_PER_CORE = 2
MAX_LIVE_STREAMS = 200
DEFAULT_READ_BACK_MIN_CONFIDENCE = 0.75


def _live_streams(environ: Mapping[str, str]) -> int:
    raw = environ.get("IVR_LIVE_STREAMS", "").strip()
    if not raw:
        return default_live_streams()
    if not raw.isdigit() or int(raw) > MAX_LIVE_STREAMS:
        raise ConfigError(
            f"IVR_LIVE_STREAMS must be a whole number from 0 (transcribe after the download only) to "
            f"{MAX_LIVE_STREAMS}, not {raw!r}"
        )
    return int(raw)


def _read_back_min_confidence(environ: Mapping[str, str]) -> float:
    raw = environ.get("IVR_READ_BACK_MIN_CONFIDENCE", "").strip()
    if not raw:
        return DEFAULT_READ_BACK_MIN_CONFIDENCE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"IVR_READ_BACK_MIN_CONFIDENCE must be a number from 0 (always read the caller's words back) "
            f"to 1, not {raw!r}"
        )
    return value


def _redis_problem(url: str) -> str | None:
    """Why a Redis URL must not carry the job queue, or None. The queue unpickles what it reads from Redis,
    so whoever can write to it can run code in the worker: a password is required."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"IVR_REDIS_URL must be a redis://, rediss:// or unix:// URL, not {parts.scheme or url!r}"
    try:
        password = parts.password
    except ValueError:
        password = None
    if password or any(parse_qs(parts.query).get("password", [])):
        return None
    return (
        "IVR_REDIS_URL has no password: whoever can reach Redis could run code in the worker (jobs are "
        "unpickled); use redis://:PASSWORD@host:6379/0 (or rediss://:PASSWORD@host for TLS) and set "
        "requirepass in redis.conf"
    )


def _dev_secrets(instance_dir: Path) -> dict[str, str]:
    """Random secrets kept in the instance folder so a development server and its dev phone agree."""
    path = instance_dir / "dev-secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    values = {
        "secret_key": secrets.token_hex(32),
        "twilio_auth_token": secrets.token_hex(16),
        "twilio_account_sid": "AC" + secrets.token_hex(16),
    }
    instance_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def read_environment() -> dict[str, str]:
    """os.environ plus the repository's `.env` (which never overrides a variable already set)."""
    from dotenv import load_dotenv

    load_dotenv(REPO_ROOT / ".env", override=False)
    return dict(os.environ)


def speech_model_location(environ: Mapping[str, str]) -> tuple[str | None, Path]:
    """IVR_VOSK_MODEL (a model name or path, None = the default model) and IVR_MODELS_DIR.
    Read on their own too, so the model commands work before the line's secrets are configured."""
    models_dir = Path(environ.get("IVR_MODELS_DIR") or DEFAULT_MODELS_DIR).resolve()
    return environ.get("IVR_VOSK_MODEL") or None, models_dir


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build validated settings from `environ` (default: os.environ after loading `.env`)."""
    if environ is None:
        environ = read_environment()
    env = environ.get("IVR_ENV", "production").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"IVR_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    instance_dir = Path(environ.get("IVR_INSTANCE_DIR") or REPO_ROOT / "instance").resolve()
    warnings: list[str] = []

    secret_key = environ.get("IVR_SECRET_KEY", "")
    auth_token = environ.get("TWILIO_AUTH_TOKEN", "")
    account_sid = environ.get("TWILIO_ACCOUNT_SID", "")
    if env == "production":
        missing = [
            name
            for name, value in (
                ("IVR_SECRET_KEY", secret_key),
                ("TWILIO_AUTH_TOKEN", auth_token),
                ("TWILIO_ACCOUNT_SID", account_sid),
                ("IVR_PUBLIC_URL", environ.get("IVR_PUBLIC_URL", "")),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                "missing " + ", ".join(missing) + " (required in production; "
                "set IVR_ENV=development to try the line locally with generated secrets)"
            )
        if len(secret_key) < 32:
            raise ConfigError("IVR_SECRET_KEY must be at least 32 characters in production")
    elif not (secret_key and auth_token and account_sid):
        generated = _dev_secrets(instance_dir)
        secret_key = secret_key or generated["secret_key"]
        auth_token = auth_token or generated["twilio_auth_token"]
        account_sid = account_sid or generated["twilio_account_sid"]
        warnings.append(f"using development secrets from {instance_dir / 'dev-secrets.json'}")

    public_url = (environ.get("IVR_PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"IVR_PUBLIC_URL must be an http(s) URL, not {public_url!r}")
    if env == "production" and parts.scheme != "https":
        raise ConfigError("IVR_PUBLIC_URL must use https in production (Twilio signs the URL it calls)")

    default_hosts = "api.twilio.com" if env == "production" else "api.twilio.com,127.0.0.1,localhost"
    recording_hosts = _split_list(environ.get("IVR_RECORDING_HOSTS") or default_hosts)

    duty_numbers = _split_list(environ.get("IVR_DUTY_NUMBERS", ""))
    for number in duty_numbers:
        if not number.lstrip("+").isdigit():
            raise ConfigError(f"IVR_DUTY_NUMBERS: {number!r} is not a phone number (use E.164, e.g. +8613800000000)")
    if not duty_numbers:
        warnings.append("IVR_DUTY_NUMBERS is empty: calls for a person will be taken as messages")

    timezone = environ.get("IVR_TIMEZONE", "Asia/Shanghai")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(timezone)
    except Exception as exc:
        raise ConfigError(f"IVR_TIMEZONE {timezone!r} is not a known time zone") from exc

    speech_model, models_dir = speech_model_location(environ)
    twilio_api_url = (environ.get("IVR_TWILIO_API_URL") or "https://api.twilio.com").rstrip("/")
    api_parts = urlsplit(twilio_api_url)
    if api_parts.scheme not in ("http", "https") or not api_parts.netloc:
        raise ConfigError(f"IVR_TWILIO_API_URL must be an http(s) URL, not {twilio_api_url!r}")
    if env == "production" and api_parts.scheme != "https":
        raise ConfigError("IVR_TWILIO_API_URL must use https in production (it carries the auth token)")
    max_recording_bytes = _positive_number(environ, "IVR_MAX_RECORDING_BYTES", 256 * 1024 * 1024, int)
    db_timeout = _positive_number(environ, "IVR_DB_TIMEOUT", 2.0, float)
    if db_timeout > 10:
        raise ConfigError("IVR_DB_TIMEOUT must be at most 10 seconds (Twilio waits 15 s for a webhook)")
    call_windows = environ.get("IVR_CALL_WINDOWS", "").strip() or DEFAULT_CALL_WINDOWS
    call_days_off = environ.get("IVR_CALL_DAYS_OFF", "").strip()
    try:
        call_calendar(call_windows, call_days_off, timezone)
    except CallWindowError as exc:
        raise ConfigError(f"IVR_CALL_WINDOWS / IVR_CALL_DAYS_OFF: {exc}") from None
    redis_url = environ.get("IVR_REDIS_URL") or None
    if redis_url and (problem := _redis_problem(redis_url)):
        if env == "production":
            raise ConfigError(problem)
        warnings.append(problem)
    settings = Settings(
        env=env,
        instance_dir=instance_dir,
        database_url=environ.get("IVR_DATABASE_URL") or f"sqlite:///{instance_dir / 'ivr.sqlite3'}",
        recordings_dir=Path(environ.get("IVR_RECORDINGS_DIR") or REPO_ROOT / "recordings").resolve(),
        public_url=public_url,
        property_name=environ.get("IVR_PROPERTY_NAME", "").strip() or "幸福家园",
        duty_numbers=duty_numbers,
        recording_hosts=recording_hosts,
        redis_url=redis_url,
        twilio_account_sid=account_sid,
        twilio_auth_token=auth_token,
        secret_key=secret_key,
        timezone=timezone,
        huey_path=instance_dir / "huey.sqlite3",
        speech_model=speech_model,
        models_dir=models_dir,
        sms_from=environ.get("IVR_SMS_FROM") or None,
        twilio_api_url=twilio_api_url,
        max_recording_bytes=int(max_recording_bytes),
        db_timeout_seconds=float(db_timeout),
        trusted_proxies=_trusted_proxies(environ),
        live_streams=_live_streams(environ),
        read_back_min_confidence=_read_back_min_confidence(environ),
        call_windows=call_windows,
        call_days_off=call_days_off,
        follow_up_delay_minutes=_follow_up_delay(environ),
        warnings=tuple(warnings),
    )
    return settings.replace(**overrides) if overrides else settings

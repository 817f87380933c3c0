"""Settings validated at start-up: trusted proxies, the Redis queue's password."""

from __future__ import annotations

import pytest

from ivr.config import ConfigError, load_settings


@pytest.fixture
def production(settings_environ: dict[str, str]) -> dict[str, str]:
    return {**settings_environ, "IVR_ENV": "production"}


def test_trusted_proxies_default_to_none(settings_environ):
    assert load_settings(settings_environ).trusted_proxies == 0
    assert load_settings({**settings_environ, "IVR_TRUSTED_PROXIES": "2"}).trusted_proxies == 2


@pytest.mark.parametrize("value", ["-1", "6", "one", "1.5"])
def test_trusted_proxies_must_be_a_small_whole_number(settings_environ, value):
    with pytest.raises(ConfigError, match="IVR_TRUSTED_PROXIES must be a whole number from 0 to 5"):
        load_settings({**settings_environ, "IVR_TRUSTED_PROXIES": value})


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@redis.internal:6379/0",
        "redis://ivr:s3cret@redis.internal/0",
        "rediss://:s3cret@redis.internal:6380/0",
        "redis://redis.internal/0?password=s3cret",
    ],
)
def test_production_accepts_redis_with_a_password(production, url):
    settings = load_settings({**production, "IVR_REDIS_URL": url})
    assert settings.redis_url == url and not any("IVR_REDIS_URL" in w for w in settings.warnings)


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis.internal:6379/0",
        "redis://ivr@redis.internal/0",
        "rediss://redis.internal:6380/0",
        "redis://:@redis.internal/0",
    ],
)
def test_production_refuses_redis_without_a_password(production, url):
    with pytest.raises(ConfigError, match=r"IVR_REDIS_URL has no password.*redis://:PASSWORD@"):
        load_settings({**production, "IVR_REDIS_URL": url})


def test_production_refuses_a_url_that_is_not_redis(production):
    with pytest.raises(ConfigError, match="redis://, rediss:// or unix://"):
        load_settings({**production, "IVR_REDIS_URL": "http://:pw@redis.internal/"})


@pytest.mark.parametrize("env", ["development", "test"])
def test_outside_production_a_redis_url_without_password_is_only_a_warning(settings_environ, env):
    settings = load_settings({**settings_environ, "IVR_ENV": env, "IVR_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert any("IVR_REDIS_URL has no password" in w for w in settings.warnings)

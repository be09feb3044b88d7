from __future__ import annotations

import pytest

from jobcast.errors import ConfigError
from jobcast.settings import load_settings, redact_url


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert settings.port == 8000 and settings.host == "127.0.0.1"
    assert settings.database_dsn.startswith("postgresql://") and settings.redis_dsn.startswith(
        "redis://"
    )


def test_unknown_jobcast_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="JOBCAST_WORKER_CONCURENCY"):
        load_settings({"JOBCAST_WORKER_CONCURENCY": "4"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("JOBCAST_WS_QUEUE_SIZE", "1"),
        ("JOBCAST_REDIS_PREFIX", "has space"),
        ("JOBCAST_EMBEDDED", "perhaps"),
    ],
)
def test_bad_value_names_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({key: value})
    assert str(error.value).startswith(key)
    assert value in str(error.value)


def test_repr_hides_passwords_and_the_admin_token() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://app:hunter2@db:5432/jobs",
            "REDIS_URL": "redis://:s3cret@cache:6379/0",
            "JOBCAST_ADMIN_TOKEN": "admintoken123",
        }
    )
    text = repr(settings) + str(settings)
    for secret in ("hunter2", "s3cret", "admintoken123"):
        assert secret not in text
    assert "app:***@db" in text
    assert settings.database_dsn.endswith("hunter2@db:5432/jobs")


def test_redact_url_leaves_urls_without_password_alone() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_configuration_doc_lists_every_setting_as_the_class_says() -> None:
    from jobcast.settings import ROOT, markdown_table

    doc = (ROOT / "docs" / "configuration.md").read_text()
    table = doc.split("<!-- settings:start -->\n", 1)[1].split("<!-- settings:end -->", 1)[0]
    assert table == markdown_table(), "run: python -m jobcast.settings, and paste it into the doc"


def test_client_keys_are_allowed_but_not_settings() -> None:
    settings = load_settings({"JOBCAST_URL": "http://x", "JOBCAST_TOKEN": "t"})
    assert "JOBCAST_URL" not in repr(settings)

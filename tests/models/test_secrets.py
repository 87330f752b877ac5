"""The one masking rule: every form of URL a SQLAlchemy, Redis or journal storage can carry a secret in."""

import pytest

from lwl.models import has_secret, mask_secrets


@pytest.mark.parametrize(
    "url, masked",
    [
        ("postgresql://postgres@127.0.0.1/db?password=hunter2", "postgresql://postgres@127.0.0.1/db?password=***"),
        ("postgresql://u:hunter2@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("postgresql+psycopg://u:hun%40ter2@h/d", "postgresql+psycopg://u:***@h/d"),
        ("postgresql://u:pa/ss@h/d", "postgresql://u:***@h/d"),  # SQLAlchemy takes anything but @ as the password
        (
            "mysql+pymysql://root:hunter2@127.0.0.1:3306/test?charset=utf8",
            "mysql+pymysql://root:***@127.0.0.1:3306/test?charset=utf8",
        ),
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:hunter2@h:6380", "rediss://user:***@h:6380"),
        ("redis://h:6379/0?password=hunter2&db=1", "redis://h:6379/0?password=***&db=1"),
        (
            "postgresql://u@h/d?sslmode=require&sslpassword=hunter2&application_name=x",
            "postgresql://u@h/d?sslmode=require&sslpassword=***&application_name=x",
        ),
        ("postgresql://u@h/d?PASSWORD=hunter2", "postgresql://u@h/d?PASSWORD=***"),
        (
            "cannot open storage 'postgresql://a:hunter2@h/d': connection refused",
            "cannot open storage 'postgresql://a:***@h/d': connection refused",
        ),
    ],
)
def test_every_form_is_masked(url, masked):
    assert mask_secrets(url) == masked and has_secret(url)
    assert "hunter2" not in mask_secrets(url) and mask_secrets(masked) == masked


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///studies/x.db",
        "studies/x.log",
        "redis://127.0.0.1:6379/0",
        "mysql+pymysql://root@127.0.0.1:3306/test",
        "postgresql://u@h/d?sslmode=require",
    ],
)
def test_urls_without_a_secret_are_unchanged(url):
    assert mask_secrets(url) == url and not has_secret(url)

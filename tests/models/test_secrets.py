"""The one masking rule: every form of URL a SQLAlchemy, Redis or journal storage can carry a secret in, masked as
SQLAlchemy parses it."""

import pytest
from sqlalchemy.engine import make_url

from lwl.models import has_secret, mask_secrets, mask_url
from lwl.search import mask_url as search_mask_url

# (url, masked, the secret as SQLAlchemy would send it to the server)
FORMS = [
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
    ("redis://h:6379/0?password=hunter2&db=1", "redis://h:6379/0?db=1&password=***"),
    (
        "postgresql://u@h/d?sslmode=require&sslpassword=hunter2&application_name=x",
        "postgresql://u@h/d?application_name=x&sslmode=require&sslpassword=***",
    ),
    ("postgresql://u@h/d?PASSWORD=hunter2", "postgresql://u@h/d?PASSWORD=***"),
    # issue 28's four forms: a user name with '@' (Azure), a password with a space, a percent-encoded query key,
    # an unencoded '@' in the password
    ("postgresql://u@x:hunter2@host/db", "postgresql://u%40x:***@host/db"),
    ("postgresql://hostile@az:hunter2@127.0.0.1:5432/test", "postgresql://hostile%40az:***@127.0.0.1:5432/test"),
    ("postgresql://u:hunter2 with spaces@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u@host/db?pass%77ord=hunter2", "postgresql://u@host/db?password=***"),
    ("postgresql://u@host/db?sslmode=require&api%5Fkey=hunter2", "postgresql://u@host/db?api_key=***&sslmode=require"),
    ("postgresql://u:hun@ter2@host/db", "postgresql://u:***@host/db"),
    ("mysql+pymysql://root:hunter2@h:notaport/test", "mysql+pymysql://***"),  # SQLAlchemy cannot parse it: all hidden
]


@pytest.mark.parametrize("url, masked", FORMS)
def test_every_form_is_masked_as_sqlalchemy_parses_it(url, masked):
    assert mask_url(url) == masked == search_mask_url(url) == mask_secrets(url) and has_secret(url)
    assert "hunter2" not in masked and "ter2" not in masked and mask_url(masked) == masked
    # what SQLAlchemy would send as the password, or a secret query value, never survives
    assert all(secret not in masked for secret in _parsed_secrets(url))


def _parsed_secrets(url):
    try:
        parsed = make_url(url)
    except ValueError:
        return []
    found = [parsed.password or ""] + [str(v) for k, v in parsed.query.items() if "pass" in k or "key" in k]
    return [s for s in found if s]


@pytest.mark.parametrize("url, masked", FORMS)
def test_a_message_quoting_the_url_or_its_password_is_masked(url, masked):
    message = f"cannot open storage '{url}': connection refused"
    assert mask_secrets(message, url) == f"cannot open storage '{masked}': connection refused"
    for secret in _parsed_secrets(url):  # a driver that quotes the password on its own
        assert secret not in mask_secrets(f"FATAL: password authentication failed ({url}) {secret}", url)
    if " " not in url:  # a URL in a message, not given: each word is masked on its own
        assert mask_secrets(message) == f"cannot open storage '{masked}': connection refused"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///studies/x.db",
        "studies/x.log",
        "journal:studies/x.log",
        "redis://127.0.0.1:6379/0",
        "mysql+pymysql://root@127.0.0.1:3306/test",
        "postgresql://u@h/d?sslmode=require",
    ],
)
def test_urls_without_a_secret_are_unchanged(url):
    assert mask_url(url) == mask_secrets(url) == url and not has_secret(url)

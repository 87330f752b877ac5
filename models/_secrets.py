"""The one rule that keeps secrets out of everything lwl-search prints or stores: messages, study attributes,
artifacts, exported configs, reports, training runs and the commands it suggests.

A storage URL is masked as SQLAlchemy parses it (`sqlalchemy.engine.make_url`), not by a pattern of our own: the
password is whatever SQLAlchemy would send to the server, whatever it holds (an `@`, a space, a `/`), and whatever the
user name holds (`u@x:pw@host`, Azure's form); every query parameter whose decoded name looks like a credential
(`?password=`, `?pass%77ord=`, `&sslpassword=`, `?token=`, `?api_key=` ...) is masked too. Redis URLs
(`redis://:pw@host`) parse the same way. A URL SQLAlchemy cannot parse shows nothing past its scheme.

`mask_url(url)` is that rule for one URL; `mask_secrets(text, *urls)` applies it to every URL in a text (a driver's
error message, a provenance string) and removes every secret of the `urls` it is given wherever it appears in the
text, also outside a URL (a driver may quote the password on its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

MASK = "***"
# Words that make a query parameter a credential, matched in its decoded, lower-cased name.
_SECRET_WORDS = ("password", "passwd", "pwd", "pass", "secret", "token", "key", "auth", "credential")
_URL_EDGE = "'\"()[]{}<>,;"  # characters that surround a URL quoted in a message, never part of it


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _parse(url: str) -> URL | None:
    """SQLAlchemy's URL for `url`, or None when it cannot parse it."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except Exception:  # noqa: BLE001 - ArgumentError, or ValueError for a port that is not a number
        return None


def _secrets_of(url: str) -> list[str]:
    """The secrets a URL carries as SQLAlchemy parses it: the password, the secret query values, and the part of the
    host before an '@' (an unencoded '@' in a password: SQLAlchemy takes the password's tail for the host)."""
    parsed = _parse(url) if "://" in url else None
    if parsed is None:
        return []
    found = [str(parsed.password)] if parsed.password else []
    host = parsed.host or ""
    if "@" in host:
        found.append(host.rsplit("@", 1)[0])
    for name, value in parsed.query.items():
        if _secret_name(name):
            found += [value] if isinstance(value, str) else list(value)
    return [s for s in found if s]


def mask_url(url: str) -> str:
    """`url` as SQLAlchemy renders it with its password and every credential-like query value replaced by ***.

    A path (no `://`, e.g. a journal file) comes back unchanged; a URL SQLAlchemy cannot parse as `scheme://***`.
    """
    if "://" not in url:
        return url
    parsed = _parse(url)
    if parsed is None:
        return url.split("://", 1)[0] + "://" + MASK
    host = parsed.host or ""
    if "@" in host:
        parsed = parsed.set(host=host.rsplit("@", 1)[1], password=MASK)
    secret_keys = [k for k in parsed.query if _secret_name(k)]
    if secret_keys:  # a fixed placeholder value, replaced after rendering (rendering would percent-encode ***)
        parsed = parsed.update_query_dict({k: "lwlmasked" for k in secret_keys})
    rendered: str = parsed.render_as_string(hide_password=True)
    return rendered.replace("=lwlmasked", "=" + MASK)


def mask_secrets(text: str, *urls: str) -> str:
    """`text` with every secret of the given `urls` removed wherever it stands, and every URL in it masked
    (`mask_url`); a text without a URL or a known secret comes back unchanged."""
    for url in urls:
        if url and "://" in url:
            text = text.replace(url, mask_url(url))
            for secret in _secrets_of(url):
                for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}:
                    text = text.replace(form, MASK)
    if "://" not in text:
        return text
    if text.strip() == text and _parse(text) is not None:  # the whole text is one URL (its password may hold spaces)
        return mask_url(text)
    return " ".join(_mask_word(word) for word in text.split(" "))


def _mask_word(word: str) -> str:
    """A word of a message: the URL in it masked, the characters around it kept."""
    if "://" not in word:
        return word
    scheme_at = word.index("://")
    start = scheme_at
    while start > 0 and (word[start - 1].isalnum() or word[start - 1] in "+.-_"):
        start -= 1
    end = len(word)
    while end > scheme_at + 3 and word[end - 1] in _URL_EDGE + ".:":
        end -= 1
    return word[:start] + mask_url(word[start:end]) + word[end:]


def has_secret(url: str) -> bool:
    """Whether `url` carries a password or credential (so a command can say where the password has to go back)."""
    return bool(_secrets_of(url)) or ("://" in url and _parse(url) is None)


__all__ = ["MASK", "has_secret", "mask_secrets", "mask_url"]

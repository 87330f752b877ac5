"""The one rule that keeps secrets out of everything lwl-search prints or stores: messages, study attributes,
artifacts, exported configs, reports and the commands it suggests.

A storage URL can carry a secret in its user info (`postgresql://user:pw@host/db`, Redis' `redis://:pw@host`) or in
its query (`?password=pw`, `&sslpassword=…`, `?token=…`). `mask_secrets` replaces each such value with `***` in
any text, wherever URLs appear in it; a text without a secret comes back unchanged.
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://[user]:SECRET@ -- the user part may be empty (redis://:pw@host).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s?#]*:)[^@\s]*@")
# ?name=SECRET or &name=SECRET (also ; as separator) for every parameter name that holds a credential.
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|pass|sslpassword|secret|client_secret|token|access_token|auth_token|"
    r"api_key|apikey|access_key|secret_key|auth|credentials?)=)[^&;\s#'\"]*",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """`text` with every password or credential a URL in it carries replaced by ***."""
    text = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", text)
    return _QUERY.sub(lambda m: m.group("head") + MASK, text)


def has_secret(text: str) -> bool:
    """Whether `mask_secrets` would change `text` (so a command can say where the password has to go back)."""
    return mask_secrets(text) != text


__all__ = ["MASK", "has_secret", "mask_secrets"]

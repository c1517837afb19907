"""Hide credentials embedded in URLs (`https://user:token@host/...`) from any text.

Its own module, importing only `re`, so the pure core of the controller can redact run
records without importing the fetcher's subprocess machinery.
"""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def redact(text: str) -> str:
    """Hide user:token@ in any URL within `text`."""
    return _CREDENTIALS.sub(r"\1***@", text)

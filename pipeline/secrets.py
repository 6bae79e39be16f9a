"""Secrets never leave the process: passwords in database URLs and tracking URIs are hidden in every log line,
error message and file (`hide_password`, `redact`); the database URL can come from the environment."""

from __future__ import annotations

import os
import re

DATABASE_URL_ENV = "LEADSCORE_DATABASE_URL"  # the score's database URL when --database-url is not given
HIDDEN = "***"

# user:password@ right after a scheme's "//" (postgresql+psycopg://u:p@host/db, https://u:p@mlflow.example)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<password>[^@/\s]*)@")
# password=... in a query string or a libpq keyword string (?password=..., password=... host=...)
_QUERY = re.compile(r"(?P<head>(?:^|[?&;\s])(?:password|passwd|pwd)=)(?P<password>[^&;\s]*)", re.IGNORECASE)


def hide_password(url: object) -> str | None:
    """`url` with its password replaced by ***: a SQLAlchemy URL (rendered by SQLAlchemy itself), an http(s) URI
    with user:password@, or a password= query parameter. None stays None; a URL without a password is unchanged."""
    if url is None:
        return None
    text = str(url)
    if "://" in text and not text.lower().startswith(("http://", "https://")):
        try:
            from sqlalchemy.engine import make_url

            parsed = make_url(text)
            if parsed.password is not None:
                text = parsed.render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: the generic rules below
            pass
    return redact(text)


def redact(text: object) -> str:
    """Any text (a log line, an error message) with the passwords of the URLs in it hidden."""
    out = _USERINFO.sub(lambda m: f"{m['head']}:{HIDDEN}@" if m["password"] != HIDDEN else m[0], str(text))
    return _QUERY.sub(lambda m: m["head"] + HIDDEN, out)


def database_url(given: str | None) -> str | None:
    """The database URL to write to: the one given (--database-url), else env LEADSCORE_DATABASE_URL, else None
    (SQLite in the scored folder)."""
    return given or os.environ.get(DATABASE_URL_ENV) or None

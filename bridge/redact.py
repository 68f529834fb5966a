"""Redaction of secrets from anything that may be logged."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "redact", "redact_url"]

_TOKEN_IN_URL = re.compile(r"((?:^|[?&;])(?:token|access_token|jwt)=)[^&\s\"']*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


def redact_url(url: str) -> str:
    return _TOKEN_IN_URL.sub(r"\1[REDACTED]", url)


def redact(text: str) -> str:
    text = _TOKEN_IN_URL.sub(r"\1[REDACTED]", text)
    text = _BEARER.sub(r"\1[REDACTED]", text)
    return _JWT.sub("[REDACTED-JWT]", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and arguments so no token reaches a log line (access logs too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            if isinstance(record.args, tuple):
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True

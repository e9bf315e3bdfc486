"""Credential redaction for URLs, so a camera password never reaches a name, a log line or an error.

One function for every URL emoedge prints: source names, log lines, error messages and, at the command line's door,
every error and warning line (`emoedge.cli`).
"""

from __future__ import annotations

import re

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://\S*")
# What follows the "@" that ends the userinfo: a host name or [IPv6], an optional port, then the path, query,
# fragment or the end of the URL.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]*\]|[\w.~%-]*)(:\d*)?([/?#]|$)")
# Query parameters that carry secrets (HTTP cameras take ?user=admin&pwd=...; signed URLs a signature or token).
_SECRET_PARAM = re.compile(
    r"([?&;][^=&#;\s]*(?:pass|pwd|token|secret|key|auth|sig|credential)[^=&#;\s]*=)[^&#;\s]*", re.IGNORECASE
)


def redact_url(text: str) -> str:
    """Hide the credentials of every URL in `text` (a URL or a whole message): rtsp://u:p@h → rtsp://***@h, and the
    values of secret-looking query parameters (pwd=***, token=***)."""
    return _URL.sub(lambda m: _SECRET_PARAM.sub(r"\1***", _redact_userinfo(m.group())), text)


def _redact_userinfo(url: str) -> str:
    found = userinfo(url)
    if found is None:
        return url
    start = url.index("://") + 3
    return url[:start] + "***" + url[start + len(found) :]


def userinfo(url: str) -> str | None:
    """The user[:password] of one URL as typed, raw "/", "?", "#" and "@" included; None if it has none.

    It ends at the last "@" followed by something that reads as host[:port] and then a path, query, fragment or the
    end. A password typed raw may hold "/", "?", "#" and "@" (a URL parser ends the authority at the first of
    "/?#"; FFmpeg at the last "@" before it), so no parser's split is trusted: rtsp://u:pa?ss#wo/rd@cam/live and
    rtsp://u:p@ss/x@cam/live both have their whole password found. Erring on the side of hiding, an "@" in a query
    followed by a host-like word (?mail=a@b) counts as the end; a password is never cut short.
    """
    start = url.index("://") + 3
    ats = [i for i in range(start, len(url)) if url[i] == "@"]
    if not ats:
        return None
    end = next((i for i in reversed(ats) if _HOST.match(url, i + 1)), ats[-1])
    return url[start:end]

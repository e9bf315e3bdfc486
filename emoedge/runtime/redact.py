"""Credential redaction for stream URLs, so a camera password never reaches a name, a log line or an error."""

from __future__ import annotations

import re

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://\S*")


def redact_url(text: str) -> str:
    """Replace the credentials of every URL in `text` (a URL or a whole message): rtsp://u:p@h → rtsp://***@h."""
    return _URL.sub(lambda m: _redact_one(m.group()), text)


def _redact_one(url: str) -> str:
    """Where the userinfo of one URL ends: at the last "@" before the path of the host that follows the first "@".

    A password typed raw may hold "/", "?", "#" or "@" (a URL parser would end the authority at the first of them);
    a query may hold "@" too. Looking for the first "/" after the first "@" finds the real host's path in both cases:
    rtsp://u:pa/ss#x@cam/live, rtsp://u:p@ss@cam/s?mail=a@b. Without a path, the userinfo ends at the last "@"
    before the query or fragment, else at the last "@".
    """
    scheme_end = url.index("://") + 3
    first = url.find("@", scheme_end)
    if first < 0:
        return url
    ends = [i for i in (url.find(c, first) for c in "/?#") if i >= 0]
    limit = min(ends) if ends else len(url)
    last = url.rfind("@", scheme_end, limit)
    return url[:scheme_end] + "***" + url[last:]

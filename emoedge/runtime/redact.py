"""Credential redaction for stream URLs, so a camera password never reaches a name, a log line or an error."""

from __future__ import annotations

import re

# scheme://userinfo@ — userinfo runs to the last "@" before the end of the authority ("/", "?", "#" or
# whitespace), which is where FFmpeg's own URL parser (av_url_split) ends it, so whatever FFmpeg would send as
# credentials is what gets hidden.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#]*@")


def redact_url(text: str) -> str:
    """Replace the credentials of every URL in `text` (a URL or a whole message): rtsp://u:p@h → rtsp://***@h."""
    return _USERINFO.sub(r"\g<scheme>***@", text)

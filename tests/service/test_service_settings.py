"""`--http [HOST:]PORT` and its token: read before anything loads, one line per mistake naming the fix."""

from __future__ import annotations

import pytest

from emoedge.errors import EmoedgeError
from emoedge.service.settings import TOKEN_ENV, Address, ServiceSettings, address

TOKEN = "0123456789abcdef0123"


@pytest.mark.parametrize(
    ("http", "token", "expected"),
    [
        (None, None, None),
        ("8080", None, Address("127.0.0.1", 8080, None)),
        ("127.0.0.1:9000", None, Address("127.0.0.1", 9000, None)),
        ("localhost:9000", None, Address("localhost", 9000, None)),
        ("[::1]:9000", None, Address("::1", 9000, None)),
        ("0.0.0.0:8080", TOKEN, Address("0.0.0.0", 8080, TOKEN)),
        ("192.168.1.5:8080", TOKEN, Address("192.168.1.5", 8080, TOKEN)),
    ],
)
def test_addresses(http, token, expected, monkeypatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert address(ServiceSettings(http, token)) == expected


@pytest.mark.parametrize(
    ("http", "token", "message"),
    [
        ("http", None, "--http http: expected [HOST:]PORT"),
        ("127.0.0.1:", None, "expected [HOST:]PORT"),
        ("8080:", None, "expected [HOST:]PORT"),
        ("70000", None, "PORT a number from 1 to 65535"),
        ("0", None, "PORT a number from 1 to 65535"),
        ("0.0.0.0:8080", None, "needs a token: give --http-token TOKEN or set EMOEDGE_HTTP_TOKEN"),
        ("camera-box:8080", None, "needs a token"),
        ("0.0.0.0:8080", "short", "--http-token: 5 characters; expected at least 16"),
    ],
)
def test_mistakes_are_one_line(http, token, message, monkeypatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(EmoedgeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        address(ServiceSettings(http, token))


def test_the_token_comes_from_the_environment_too(monkeypatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert address(ServiceSettings("0.0.0.0:8080")) == Address("0.0.0.0", 8080, TOKEN)
    assert address(ServiceSettings("8080", "another-token-0123456")).token == "another-token-0123456"  # the option wins
    assert Address("::1", 80, None).url == "http://[::1]:80/"

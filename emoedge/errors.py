"""The one exception type for problems a user can fix (bad files, bad config, bad arguments).

The CLI prints its message as a single line and exits with status 2; anything else is an internal error.
"""


class EmoedgeError(Exception):
    """A user-facing error whose message names the file/field/value and what was expected."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

"""The one exception type for problems a user can fix (bad files, bad config, bad arguments).

The CLI prints its message as a single line and exits with status 2; anything else is an internal error.
"""


class EmoedgeError(Exception):
    """A user-facing error whose message names the file/field/value and what was expected."""

    def __init__(self, message: str) -> None:
        text = str(message)
        if "Original Traceback" in text:
            # Re-raised by a DataLoader worker with its traceback in the text: keep the worker's own message.
            last = text.strip().splitlines()[-1]
            text = last.split(": ", 1)[1] if ": " in last else last
        super().__init__(" ".join(text.split()))


class ModelUnavailable(EmoedgeError):
    """A served model that does not answer now (its server restarting, the network down): a run waits for it, up to
    its `--model-timeout-s`, instead of failing; any other model error is an EmoedgeError."""

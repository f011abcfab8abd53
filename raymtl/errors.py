"""raymtl's exceptions.

`UserError` and its subclasses are the user's mistake or unusable input: the CLI prints the
message (no traceback) and exits 2. Anything else escaping a command is a failure inside the
run: exit 1.
"""

from __future__ import annotations


class RaymtlError(Exception):
    """Base of every raymtl exception."""


class UserError(RaymtlError):
    """Bad arguments or unusable input; CLI exit code 2."""


class ConfigError(UserError):
    """A setting with an unknown name, a wrong type or an out-of-range value."""


class InputFileError(UserError):
    """A file we cannot use, with the reason. `file` is as the user or the metadata names it."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


class LayoutError(InputFileError):
    """A dataset folder or metadata file that does not follow the published layout."""


class AudioError(InputFileError):
    """An audio file that is missing, empty, corrupt, truncated or of the wrong shape."""


class OutputExistsError(UserError):
    """A finished output folder that we refuse to overwrite."""

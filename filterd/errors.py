"""One root exception for filterd, with subclasses that say what went wrong.

Every error that reaches a person names where the problem is: a config error
carries the file, line and key; a list error carries the source name.
"""

from __future__ import annotations


class FilterdError(Exception):
    """Root of every error filterd raises on purpose."""


class ConfigError(FilterdError):
    """A configuration or policy file is invalid. Never loaded; the running one stays."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f": {self.key}"
        return f"{where}: {self.message}"


class ConfigErrors(ConfigError):
    """Several configuration errors found in one pass (all are reported, none loaded)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, file=first.file, line=first.line, key=first.key)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)


class ListError(FilterdError):
    """A list source could not be fetched, parsed or compiled. The last good index stays."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class IndexFormatError(ListError):
    """A compiled list index on disk is missing, truncated or of an unknown version."""

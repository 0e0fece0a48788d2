"""One root exception for filterd, with subclasses that say what went wrong.

Every error that reaches a person names where the problem is: a config error
carries the file, line and key; a list error carries the source name.
"""

from __future__ import annotations

from typing import Any

from filterd.words.messages import message as _message


class FilterdError(Exception):
    """Root of every error filterd raises on purpose."""


class ConfigError(FilterdError):
    """A configuration or policy file is invalid. Never loaded; the running one stays."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, code: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.code = code               # filterd.words.messages code: words in any language
        self.params = dict(params or {})
        super().__init__(str(self))

    @classmethod
    def coded(cls, code: str, *, file: str | None = None, line: int | None = None,
              key: str | None = None, **params: Any) -> ConfigError:
        """An error whose words come from the message catalog (English in `str()`)."""
        return cls(_message(code, "en", **params), file=file, line=line, key=key, code=code,
                   params=params)

    def text(self, lang: str = "vi") -> str:
        """This error in the reader's language, file:line: key first."""
        from filterd.words.messages import render_error

        return render_error(self, lang)

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
        super().__init__(first.message, file=first.file, line=first.line, key=first.key,
                         code=first.code, params=first.params)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(e) for e in self.errors)


class ListError(FilterdError):
    """A list source could not be fetched, parsed or compiled. The last good index stays."""

    def __init__(self, message: str, *, source: str | None = None, code: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.source = source
        self.message = message
        self.code = code
        self.params = dict(params or {})
        super().__init__(f"{source}: {message}" if source else message)

    @classmethod
    def coded(cls, code: str, *, source: str | None = None, **params: Any) -> ListError:
        return cls(_message(code, "en", **params), source=source, code=code, params=params)

    def text(self, lang: str = "vi") -> str:
        from filterd.words.messages import render_error

        return render_error(self, lang)


class IndexFormatError(ListError):
    """A compiled list index on disk is missing, truncated or of an unknown version."""


class CodedValueError(FilterdError, ValueError):
    """A ValueError from a parser (a name, an address, a time) with a message code.

    The loader copies the code and parameters into its ConfigError, so the person
    reads it in their language.
    """

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(_message(code, "en", **params))

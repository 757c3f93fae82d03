"""All errors raised by synth-datasets.

Each class subclasses a built-in so existing ``except ValueError`` / ``except OSError`` clauses keep
working, and each message ends with the next step to take.
"""

from __future__ import annotations


class SynthDatasetsError(Exception):
    """Base class of every error raised by synth-datasets."""


class InvalidParameterError(SynthDatasetsError, ValueError):
    """A parameter value is out of range or of the wrong type."""


class TemplateError(SynthDatasetsError, ValueError):
    """A template does not compile, or a row cannot be rendered."""


class MissingVariableError(TemplateError, KeyError):
    """A template variable has no column (or value) to fill it.

    Attributes:
        variable: the missing variable.
        row: the row (index within the batch or dataset) where it was missing.
    """

    def __init__(self, message: str, *, variable: str, row: int | None = None):
        super().__init__(message)
        self.variable = variable
        self.row = row

    def __str__(self) -> str:  # KeyError would add quotes
        return self.args[0]


class ModelNotFoundError(SynthDatasetsError, FileNotFoundError):
    """The model source (file, folder, Hub id or embedded package) cannot be found."""


class ModelFileError(SynthDatasetsError, OSError):
    """A file or folder in the model cache is not what it should be: a named model whose bytes do not
    match its recorded size or sha256, or a folder this library did not make (nothing is deleted)."""


class EndpointError(SynthDatasetsError, OSError):
    """An endpoint request failed.

    Attributes:
        retryable: whether sending the same request again may succeed (429, 5xx, timeouts).
        status: the HTTP status, when there was one.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class EndpointUnreachableError(EndpointError, ConnectionError):
    """No server answers at the endpoint URL (raised before any row is generated)."""


class EndpointConfigError(EndpointError, ValueError):
    """The endpoint refuses requests in a way that retrying cannot fix (HTTP 401/403/404 on the first
    request, or the same non-retryable failure on every request so far): the run stops before the
    rest are sent. The message names the URL, the status and the likely fix."""


class GenerationError(SynthDatasetsError, RuntimeError):
    """A generation step produced only error rows (the message gives the first error)."""


class CacheError(SynthDatasetsError, OSError):
    """The response cache cannot be opened or written, or its file is damaged."""


class CacheWarning(UserWarning):
    """The response cache is read-only, or its file was deleted or replaced during a run."""


class EmptyDatasetError(SynthDatasetsError, ValueError):
    """A step received no rows where it needs some."""


class MissingColumnError(SynthDatasetsError, KeyError):
    """A column a step needs is not in the dataset (the message lists the columns that exist)."""

    def __str__(self) -> str:  # KeyError would add quotes
        return self.args[0]


class NotFittedError(SynthDatasetsError, RuntimeError):
    """A fit-then-map step was used before ``fit(ds)``."""


class ReviewFileError(SynthDatasetsError, ValueError):
    """A reviewed file cannot be merged (unknown ids, invalid labels, missing columns); nothing was applied."""


class BuilderError(SynthDatasetsError, LookupError):
    """A builder name is unknown, a builder path does not exist, or a script is not a builder."""


class HubAuthError(SynthDatasetsError, PermissionError):
    """No Hugging Face token was found, or the Hub refused it (HTTP 401/403)."""


class PublishError(SynthDatasetsError, OSError):
    """A push to the Hub failed; since a push is one commit, nothing was published."""


class NotOurFolderError(InvalidParameterError):
    """An output folder to replace (``--overwrite``, ``overwrite=True``) is not one this library wrote, or
    holds something else beside what it wrote: nothing is deleted (the message names what is in the way)."""


class SecretInDataError(SynthDatasetsError, ValueError):
    """``publish`` found a known secret (an API key or token this process holds) in the data it was
    about to write; nothing was written."""


class MissingDependencyError(SynthDatasetsError, ImportError):
    """An optional package a feature needs is not installed (the message gives the pip command)."""

"""The one exception hierarchy of promptops.

Every failure a user can cause or fix is a :class:`PromptOpsError`. Edges map
these to exit codes (``promptops.cli.errors``) and HTTP statuses
(``gateway.errors``) in exactly one place each; the core never prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class PromptOpsError(Exception):
    """Base class: a message for humans plus, where known, what to do about it."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


@dataclass(frozen=True)
class Problem:
    """One located finding in a prompt file (an error or a warning)."""

    file: str
    message: str
    json_path: str = "$"
    line: int | None = None
    column: int | None = None
    severity: str = "error"  # "error" | "warning"
    fix: str | None = None
    code: str = "invalid"

    def location(self) -> str:
        """`file:line:col` (where known) followed by the JSON path."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where} at {self.json_path}"

    def __str__(self) -> str:
        text = f"{self.location()}: {self.message}"
        return f"{text} ({self.fix})" if self.fix else text


class PromptInvalid(PromptOpsError):
    """A prompt failed JSON, schema or placeholder checks."""

    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"] or problems
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}", fix=None)
        self.problems = problems


class InvalidName(PromptOpsError):
    """A prompt name that is not allowed (checked before any file or git access)."""


class PromptNotFound(PromptOpsError):
    """No prompt of that name exists where we looked."""


class PromptExists(PromptOpsError):
    """Refusing to overwrite an existing prompt."""


class TemplateError(PromptOpsError):
    """A template or a variable cannot be rendered."""


class EmptyPrompt(TemplateError):
    """The rendered prompt is empty or only whitespace: there is nothing to send to the model."""


class RefError(PromptOpsError):
    """A `name@ref` reference is malformed or resolves to nothing."""


class VersionNotFound(RefError):
    """The reference is well-formed but names no version of that prompt."""


class NotApproved(RefError):
    """A bare name was asked for but the prompt has no approved version."""


class StoreError(PromptOpsError):
    """The git store cannot be read or written (not a repo, shallow clone, ...)."""


class Conflict(StoreError):
    """A save was based on a version someone else already replaced."""

    def __init__(self, message: str, *, fix: str | None = None, current_version: int | None = None,
                 current_commit: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.current_version = current_version
        self.current_commit = current_commit


class StoreBusy(StoreError):
    """Another writer held the repository's lock past the wait limit (a CLI approve, another save)."""


class ProtectedLabel(NotApproved):
    """A protected label cannot take that version (not approved, or its approval was revoked)."""


class Refused(PromptOpsError):
    """The action is not possible in the current state (nothing to roll back, a revoked approval, ...)."""


class LabelRefused(Refused):
    """A label move the store refused (nothing to roll back, an uncommitted labels file, ...)."""


class Forbidden(PromptOpsError):
    """The action is not allowed by the server's settings."""


class NotServed(Forbidden):
    """The serving policy does not let this caller have this version (promptops.policy)."""


class ContractRefused(PromptOpsError):
    """A caller's response_format, tools or tool_choice that would loosen or replace a prompt's reviewed
    output contract (promptops.prompt.outputs)."""


class InferenceError(PromptOpsError):
    """Talking to Triton failed. `kind` tells which of the three cases it is."""

    kind = "model-error"


class ServerUnavailable(InferenceError):
    """Triton cannot be reached (not started, crashed, wrong URL)."""

    kind = "server-unavailable"


class ModelNotFound(InferenceError):
    """Triton is up but does not serve the requested model."""

    kind = "model-not-found"


class ModelError(InferenceError):
    """The model answered with an error (bad sampling parameters, engine failure)."""

    kind = "model-error"


class NotAnEmbeddingModel(ModelError):
    """The model exists but does not take the embedding contract (a text generator, say)."""


class InferenceTimeout(InferenceError):
    """The model did not answer within the request timeout."""

    kind = "timeout"


class UnknownModel(PromptOpsError):
    """The caller named a model (not a prompt) that the server does not serve, or not for this purpose."""


class StateUnavailable(PromptOpsError):
    """The state database (request records, feedback: promptops/state) cannot be opened, read or written (not
    running, wrong URL, locked too long, or migrated by a newer promptops)."""


class UnknownRequest(PromptOpsError):
    """Feedback names a request id that the state database has no record of (a typo, another deployment's
    id, or a record dropped because the writer's queue was full) (promptops.state)."""


class ContextTooLong(PromptOpsError):
    """The prompt and the answer it asks for do not fit the model's context, counted with the model's own
    tokenizer (promptops.tokens); `max_tokens` None: the prompt leaves no room for any answer."""

    def __init__(self, message: str, *, fix: str | None = None, prompt_tokens: int, max_tokens: int | None,
                 context: int) -> None:
        super().__init__(message, fix=fix)
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context = context


class TritonLaunchError(PromptOpsError):
    """The local Triton server could not be started or stopped."""


@dataclass
class Report:
    """Problems collected over several files, for commands that keep going."""

    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

"""What every model adapter speaks: a model's configuration, the steps of an answer, and
the upstream failure with the stable code clients see."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what clients send as "model"
    model_id: str  # what the upstream API calls it
    display_name: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    max_tokens: int = 2048
    timeout: float = 60.0
    max_retries: int = 0
    include_usage: bool = True
    offline: bool = False


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(slots=True)  # one per token: slots, not frozen (frozen makes __init__ slower)
class UpstreamChunk:
    """One step of an answer: text, and at the end the finish reason and token usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


class ProviderError(Exception):
    """An upstream failure, with the stable code clients see in the `error` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

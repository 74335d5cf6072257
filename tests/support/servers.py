"""What the test servers that run in a background thread have in common."""

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class BackgroundServer(ABC):
    """Started and stopped explicitly, or used as a context manager."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}

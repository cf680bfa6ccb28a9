"""The context-manager shape every server and host fixture of the tests shares."""

from __future__ import annotations

from types import TracebackType

from typing_extensions import Self


class Managed:
    """``with X() as x``: :meth:`setup` on entry, undone by :meth:`teardown` even when it
    fails half way (nothing started is left running), and :meth:`teardown` on exit."""

    def setup(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()

"""The verb -> handler table filled by the handler modules' decorators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from s3dsi.protocol.session import Deferred

if TYPE_CHECKING:
    from s3dsi.server.session import Session

Handler = Callable[["Session", Deferred], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handles(*verbs: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for verb in verbs:
            assert verb not in HANDLERS, f"two handlers for {verb}"
            HANDLERS[verb] = fn
        return fn

    return register

"""What every resource of the admin API client shares: paths, update fields, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    from router.client.core import AsyncClient

__all__ = [
    "UNSET",
    "CursorPage",
    "Resource",
    "follow_cursors",
    "given_fields",
    "iter_page_size",
    "non_null_fields",
    "segment",
]

_Item = TypeVar("_Item", covariant=True)
_T = TypeVar("_T")


class _Unset:
    """The type of :data:`UNSET`: "leave this field as it is" in updates."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class Resource:
    """One family of admin API routes (``client.numbers``, ``client.pipes``, …)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client


class CursorPage(Protocol[_Item]):
    """A page of a cursor-paged list: its items and the cursor of the next page."""

    @property
    def data(self) -> Sequence[_Item]:
        """The items on this page."""

    @property
    def next_cursor(self) -> str | None:
        """The cursor of the next page; ``None`` on the last page."""


def iter_page_size() -> int:
    """Return the page size for iterating: ``router.client.ITER_PAGE_SIZE`` as it is now.

    Read at call time from the package, where the setting is public, so that a
    program (or a test) that changes it there is obeyed.
    """
    import router.client

    return router.client.ITER_PAGE_SIZE


async def follow_cursors(
    fetch_page: Callable[..., Awaitable[CursorPage[_T]]], **filters: Any
) -> AsyncIterator[_T]:
    """Yield every item of every matching page, following ``next_cursor`` to the end.

    Args:
        fetch_page: a resource's ``page`` method (``limit``, ``cursor``, filters).
        filters: passed to every ``fetch_page`` call unchanged.
    """
    cursor: str | None = None
    while True:
        page = await fetch_page(**filters, limit=iter_page_size(), cursor=cursor)
        for item in page.data:
            yield item
        cursor = page.next_cursor
        if cursor is None:
            return


def segment(ref: str) -> str:
    """Quote one path segment; ``+`` stays, so E.164 references read naturally."""
    return quote(ref, safe="+")


def given_fields(**fields: Any) -> dict[str, Any]:
    """Return the fields that were given (not :data:`UNSET`): the body of an update."""
    return {name: value for name, value in fields.items() if value is not UNSET}


def non_null_fields(**fields: Any) -> dict[str, Any]:
    """Return the fields that are not ``None``: the body of a create with defaults."""
    return {name: value for name, value in fields.items() if value is not None}

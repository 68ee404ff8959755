"""Opening the store the configuration asks for: Redis, or the embedded SQLite file.

The backends are imported only when opened, so a router on SQLite never loads the
Redis client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .call_store import DEFAULT_CALL_RETENTION_S

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DEFAULT_KEY_PREFIX", "default_db_path", "open_store"]

DEFAULT_KEY_PREFIX = "sip-router:"


def default_db_path() -> Path:
    """Return where the embedded store lives when no path is configured."""
    import platformdirs

    return Path(platformdirs.user_data_dir("sip-router")) / "router.db"


async def open_store(
    *,
    redis_url: str | None,
    db_path: str | None,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    call_retention_s: float = DEFAULT_CALL_RETENTION_S,
) -> Store:
    """Open the store the configuration asks for.

    Redis when ``redis_url`` is set; otherwise the embedded SQLite store at ``db_path``
    (default :func:`default_db_path`), created with its parent directories.
    """
    # Imported here: each backend imports the store interface, and a router on SQLite
    # should not need the Redis client loaded.
    if redis_url:
        from .redis_store import RedisStore

        return RedisStore.from_url(
            redis_url, key_prefix=key_prefix, call_retention_s=call_retention_s
        )

    from .embedded import EmbeddedStore

    path = Path(db_path) if db_path else default_db_path()
    return await EmbeddedStore.open(path, call_retention_s=call_retention_s)

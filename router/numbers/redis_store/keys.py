"""The Redis key schema: one key base per map, so that every key shares a hash slot.

Every key is ``<prefix>{<tag>}:<name>`` (or ``<prefix><name>`` when the prefix carries
its own ``{tag}``), so all keys of one map share one Redis Cluster hash slot and a Lua
script may touch any of them atomically. Each change that alters a number's routing is
announced on ``<prefix>invalidate``. ``docs/redis-schema.md`` lists every key.
"""

from __future__ import annotations

from redis.crc import key_slot

__all__ = ["check_one_slot", "invalidation_channel", "key_base"]


def key_base(prefix: str) -> str:
    """Return the start of every key for ``prefix``, hash tag included.

    A prefix that carries a non-empty ``{tag}`` is used as it is, so an operator can
    choose the slot (``acme:{acme}:``); otherwise ``{<prefix>}:`` is appended, which
    puts each prefix's map in a slot of its own.
    """
    start = prefix.find("{")
    if start >= 0 and prefix.find("}", start + 2) >= 0:
        return prefix
    return f"{prefix}{{{prefix.rstrip(':') or 'sip-router'}}}:"


def invalidation_channel(prefix: str) -> str:
    """Return the pub/sub channel of ``prefix``'s map (channels are not keys: no tag)."""
    return prefix + "invalidate"


def check_one_slot(prefix: str, base: str) -> None:
    """Refuse a key base whose keys would not all hash to one slot.

    Raises:
        ValueError: ``base`` (made from ``prefix``) splits keys across hash slots, as
            the empty tag ``{}`` does.
    """
    if key_slot((base + "a").encode()) != key_slot((base + "b").encode()):
        raise ValueError(f"key prefix {prefix!r} splits keys across hash slots")

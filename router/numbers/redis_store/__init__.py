"""The Redis store: one routing map shared by a fleet of router instances.

Keys, hash tags and messages are described in ``docs/redis-schema.md``; in short:

* every key is ``<prefix>{<tag>}:<name>`` (or ``<prefix><name>`` when the prefix carries
  its own ``{tag}``), so all keys of one map share one Redis Cluster hash slot and a
  Lua script may touch any of them atomically (:mod:`.keys`);
* each change that alters a number's routing publishes the number's E.164 on
  ``<prefix>invalidate`` from inside the same script (a trunk change publishes
  ``trunk:<id>``), so caches never miss a change that committed (:mod:`.scripts`);
* a routing lookup is one script call: number hash, then its pipe hash;
* accounts, API keys (by the SHA-256 of their secret) and call records live under the
  same tag; ended call records expire by themselves, and each write of a record prunes
  the indexes of those that expired.

Connection failures and timeouts become :class:`~router.numbers.errors.StoreUnavailable`
(the router answers 503 and the carrier fails over), never a hang (:mod:`.core`).

:class:`RedisStore` is put together from one part per kind of object: numbers, pipes,
trunks, accounts with their API keys, and call records, each in its own module.
"""

from __future__ import annotations

from .accounts import RedisAccounts
from .calls import RedisCalls
from .core import COMMAND_TIMEOUT_S, CONNECT_TIMEOUT_S
from .keys import key_base
from .numbers import RedisNumbers
from .pipes import RedisPipes
from .trunks import RedisTrunks

__all__ = ["COMMAND_TIMEOUT_S", "CONNECT_TIMEOUT_S", "RedisStore", "key_base"]


class RedisStore(RedisNumbers, RedisPipes, RedisTrunks, RedisAccounts, RedisCalls):
    """The routing map in Redis; see the module docstring and docs/redis-schema.md.

    Create one with :meth:`from_url`, or around a client that decodes responses.
    """

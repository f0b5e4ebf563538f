"""The Redis cache of ``CACHE_URL`` (rate-limit counters): Django's backend with two per-request costs removed.

- Django's client builds a new ``redis.Redis`` for every operation (its constructor fills a table of ~170
  response callbacks); a rate-limited request made two. One instance per connection pool serves every
  operation here: redis-py's clients are thread-safe, each command takes a connection from the pool and
  gives it back.
- ``incr`` was two round trips (``EXISTS``, then ``INCRBY``): it is one Lua script here, which also makes the
  pair atomic (a key expiring between the two can no longer be re-created without its expiry by ``INCRBY``).
  A missing key still raises ``ValueError``, as Django's backend does (django-ratelimit relies on it).
"""
from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


class ReusingRedisCacheClient(RedisCacheClient):
    """One ``redis.Redis`` per connection pool; ``incr`` in one round trip."""

    def __init__(self, servers, **options) -> None:
        super().__init__(servers, **options)
        self._clients: dict[int, object] = {}
        self._incr_script = None

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)  # the pool of this index (made on first use)
            client = self._clients.setdefault(index, self._client(connection_pool=pool))
        return client

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        if self._incr_script is None:
            self._incr_script = client.register_script(_INCR_IF_EXISTS)
        value = self._incr_script(keys=[key], args=[delta], client=client)
        if value is None:
            raise ValueError("Key '%s' not found." % key)
        return value


class RedisCache(DjangoRedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with :class:`ReusingRedisCacheClient`."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

"""Django's PostgreSQL backend, with a pool check that survives a database restart.

Django gives psycopg's pool `ConnectionPool.check_connection` (CONN_HEALTH_CHECKS): a connection
that fails it is discarded, but the pool waits 1 s, 2 s, 4 s … before trying the next one. After
a PostgreSQL restart or failover every idle connection is dead, so requests waited ~10 s and
failed with 500 (found by `make soak`; tests/test_db_pool.py). Here the check is
`check_pooled_connection`: a dead connection also starts one background `pool.check()`, which
replaces every dead idle connection at once, so the request's next try finds a live one.

This is a custom database backend (ENGINE `arkloop.postgresql`, set by arkloop/settings.py for
PostgreSQL URLs) — Django's supported way to change a backend. It creates the pool as Django 5.2's
`DatabaseWrapper.pool` does and relies on that class's `_connection_pools` and
`_configure_connection`; `check_backend` refuses to start when they are gone (Django is pinned).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base

log = logging.getLogger("arkloop.db")
_sweeping = threading.Lock()


def check_backend() -> None:
    for name in ("_connection_pools", "_configure_connection", "get_connection_params", "pool"):
        if not hasattr(base.DatabaseWrapper, name):
            raise ImproperlyConfigured(f"arkloop.postgresql: django's PostgreSQL DatabaseWrapper has no {name} in "
                                       "this Django version; pin the Django of requirements.txt")


check_backend()


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"].get("pool")
        if options and self.settings_dict["CONN_HEALTH_CHECKS"] and self.alias not in self._connection_pools:
            from psycopg_pool import ConnectionPool

            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django's: it sets autocommit later on
            pool = ConnectionPool(kwargs=connect_kwargs, open=False, configure=self._configure_connection,
                                  check=self._check_pooled, **({} if options is True else options))
            self._connection_pools.setdefault(self.alias, pool)
        return super().pool

    def _check_pooled(self, conn: Any) -> None:
        """Raise if `conn` is dead (the pool discards it), after starting a sweep of the pool."""
        from psycopg_pool import ConnectionPool

        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            if _sweeping.acquire(blocking=False):
                threading.Thread(target=self._sweep, name="arkloop-pool-sweep", daemon=True).start()
            raise

    def _sweep(self) -> None:
        try:
            log.warning("a pooled database connection was dead: checking the others")
            self._connection_pools[self.alias].check()
        except Exception:
            log.exception("checking the pooled database connections failed")
        finally:
            _sweeping.release()

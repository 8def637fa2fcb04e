"""Rows written with SQL of our own, prepared as Django's ORM prepares them.

The hot create paths (a message, a run) write on PostgreSQL in one statement that also checks
(arkloop.access visibility, "thread busy"), which the ORM cannot express. Their column values
still come from the model — defaults, `auto_now_add`, JSON and decimal adaptation — so a column
added to the model is written here too.
"""
from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import Field, Model


@functools.cache
def _insert_fields(model: type[Model]) -> tuple[Field, ...]:
    meta = model._meta
    return tuple(field for field in meta.local_concrete_fields if field is not meta.auto_field)


def insert_columns(model: type[Model]) -> str:
    """`"col", "col", …` of the columns an INSERT of `model` writes (all but an auto-increment id)."""
    quote = connection.ops.quote_name
    return ", ".join(quote(field.column) for field in _insert_fields(model))


def insert_params(instance: Model) -> list[Any]:
    """The values of `insert_columns(type(instance))` for this new instance, as the ORM adapts them."""
    return [field.get_db_prep_save(field.pre_save(instance, True), connection)
            for field in _insert_fields(type(instance))]

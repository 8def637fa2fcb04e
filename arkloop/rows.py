"""Rows written and read with SQL of our own, prepared and converted as Django's ORM does.

The hot paths (creating a message or a run, loading a run for the runner) do on PostgreSQL in
one statement what takes the ORM several, or checks it cannot express (arkloop.access
visibility, "thread busy"). Their column values still come from the model — defaults,
`auto_now_add`, JSON and decimal adaptation, and back — so a column added to the model is
written and read here too.
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


@functools.cache
def _select_fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(model._meta.concrete_fields)


def select_columns(model: type[Model], *, alias: str) -> str:
    """`alias.col, …` of every column of `model`, in the order `model_from_row` reads them."""
    return ", ".join(f"{alias}.{connection.ops.quote_name(field.column)}" for field in _select_fields(model))


def model_from_row(model: type[Model], values: tuple | list) -> Model:
    """The instance a row of `select_columns(model)` holds, converted as the ORM converts it."""
    fields = _select_fields(model)
    converted = [field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
                 for field, value in zip(fields, values, strict=True)]
    return model.from_db(connection.alias, [field.attname for field in fields], converted)

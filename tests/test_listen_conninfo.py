"""The LISTEN connections (stream hub, runner) go to ARKLOOP_LISTEN_DATABASE_URL when it is set —
past a transaction-mode pooler, which cannot carry LISTEN — else to the default database."""
from psycopg.conninfo import conninfo_to_dict

from runs.notify import listen_conninfo


def test_listen_url_setting_wins_over_the_default_database(settings):
    settings.ARKLOOP_LISTEN_DATABASE_URL = "postgres://listener:pw@db.internal:5433/arkloop"
    params = conninfo_to_dict(listen_conninfo(application_name="arkloop-stream-hub"))
    assert (params["host"], params["port"], params["user"], params["dbname"]) == (
        "db.internal", "5433", "listener", "arkloop")
    assert params["application_name"] == "arkloop-stream-hub"
    assert params["keepalives"] == "1"


def test_without_the_setting_it_is_the_default_database(settings, db):
    from django.db import connection

    settings.ARKLOOP_LISTEN_DATABASE_URL = ""
    params = conninfo_to_dict(listen_conninfo(application_name="arkloop-runner-listen"))
    assert params["dbname"] == str(connection.settings_dict["NAME"])
    assert params["application_name"] == "arkloop-runner-listen"

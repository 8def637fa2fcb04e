"""Any stored text renders: events stored before text from elsewhere was cleaned on the way in (SQLite
kept NUL and lone surrogates) still stream and show on the admin run page, cleaned on the way out."""
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from runs.models import RunEvent
from tests.stream.conftest import finish, make_run
from tests.stream.sse_client import events_url, read_all

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif("connection.vendor != 'sqlite'", reason="PostgreSQL refuses to store such text")]
DIRTY = {"content": "nul \x00 lone \ud800 end", "role": "assistant"}


def test_a_stream_and_the_admin_page_render_text_that_was_stored_dirty(live_server, alice):
    assert connection.vendor == "sqlite"
    run = make_run(alice)
    RunEvent.objects.create(run=run, seq=2, type="message.delta", data=DIRTY)  # around the cleaning, as before it
    run.last_seq = 2
    run.save(update_fields=["last_seq"])
    finish(run, "run.failed")
    response, frames = read_all(events_url(live_server.url, run.id), alice.auth)
    assert response.status_code == 200 and [f.data["seq"] for f in frames] == [1, 2, 3]
    assert frames[1].data["data"]["content"] == "nul \ufffd lone \ufffd end"
    staff = get_user_model().objects.create_superuser(username="staff", email="staff@arkloop.test", password="x")
    admin = Client()
    admin.force_login(staff)
    page = admin.get(f"/admin/runs/run/{run.id}/change/")
    assert page.status_code == 200 and "lone \ufffd end" in page.content.decode()

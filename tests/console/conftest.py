"""Fixtures for the staff console and the maintenance commands: a staff user and a logged-in client."""
from __future__ import annotations

import pytest
from django.test import Client

STAFF_PASSWORD = "staff-password-123"


@pytest.fixture
def staff(db, django_user_model):
    """A staff superuser, as the people who open the admin are."""
    return django_user_model.objects.create_superuser(username="staff", email="staff@arkloop.test",
                                                      password=STAFF_PASSWORD)


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client

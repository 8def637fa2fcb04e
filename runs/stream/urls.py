"""The live event stream (SSE over ASGI). Included under /v1/ before runs.urls."""
from django.urls import path

from runs.stream.views import run_events

urlpatterns = [
    path("runs/<str:run_id>/events", run_events, name="run-events"),
]

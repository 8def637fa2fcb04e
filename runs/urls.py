"""Routes of the Runs API. The colon forms of the seed API (`…:cancel`, `…:retry`) are explicit
routes, and ids never match `:` or `/`, so `/v1/runs/{id}:cancel` is never read as an id."""
from django.urls import re_path

from runs.views import RunViewSet, ThreadRunViewSet

ID = r"(?P<{}>[^/:]+)"
RUN = ID.format("run_id")
THREAD = ID.format("thread_id")

run_list = RunViewSet.as_view({"get": "list"}, detail=False)
run_detail = RunViewSet.as_view({"get": "retrieve"}, detail=True)
run_cancel = RunViewSet.as_view({"post": "cancel"}, detail=True)
run_input = RunViewSet.as_view({"post": "input"}, detail=True)
thread_runs = ThreadRunViewSet.as_view({"get": "list", "post": "create"}, detail=False)
thread_retry = ThreadRunViewSet.as_view({"post": "retry"}, detail=True)

urlpatterns = [
    re_path(r"^runs$", run_list, name="run-list"),
    re_path(rf"^runs/{RUN}:cancel$", run_cancel, name="run-cancel"),
    re_path(rf"^runs/{RUN}/cancel$", run_cancel, name="run-cancel-alias"),
    re_path(rf"^runs/{RUN}/input$", run_input, name="run-input"),
    re_path(rf"^runs/{RUN}$", run_detail, name="run-detail"),
    re_path(rf"^threads/{THREAD}/runs$", thread_runs, name="thread-runs"),
    re_path(rf"^threads/{THREAD}:retry$", thread_retry, name="thread-retry"),
    re_path(rf"^threads/{THREAD}/retry$", thread_retry, name="thread-retry-alias"),
]

"""URL map. Each app owns its /v1 routes in its own urls.py; the catch-all keeps /v1 404s in the envelope."""
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from arkloop.operations import healthz, metrics_view, readyz
from arkloop.views import AccessTokenView, ApiKeyViewSet, api_not_found

router = SimpleRouter(trailing_slash=False)
router.register("api-keys", ApiKeyViewSet, basename="api-key")

v1 = [
    path("auth/token", AccessTokenView.as_view(), name="auth-token"),
    path("openapi.json", SpectacularJSONAPIView.as_view(permission_classes=[], authentication_classes=[]),
         name="openapi"),
    # metadata_class=None: OPTIONS is a 405, not DRF's metadata rendered by the page's HTML renderer (a 500).
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi", permission_classes=[], authentication_classes=[],
                                                metadata_class=None), name="docs"),
    path("", include("threads.urls")),
    path("", include("personas.urls")),
    path("", include("runs.stream.urls")),
    path("", include("runs.urls")),
    path("", include("webhooks.urls")),
    path("", include("mcp_servers.urls")),
    *router.urls,
]

urlpatterns = [
    # For load balancers and Prometheus (arkloop/operations.py): no authentication, no /v1 conventions.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("v1/", include(v1)),
    re_path(r"^v1(/[\s\S]*)?$", api_not_found),  # [\s\S], not `.`: a path may hold a newline (%0A)
]
# The admin's CSS/JS under Daphne in development (DEBUG only; production serves collectstatic output).
urlpatterns += staticfiles_urlpatterns()

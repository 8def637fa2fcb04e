"""URLconf for tests: the real one, plus a /v1 view that crashes (to see the 500 envelope)."""
from django.urls import include, path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request):
    raise RuntimeError("boom: secret internals")


def plain_crash(request):
    raise KeyError("plain django view")


urlpatterns = [
    path("v1/_crash", crash),
    path("v1/_plain_crash", plain_crash),
    path("", include("arkloop.urls")),
]

"""Routes of the webhooks API. Ids match `[^/:]+`, so `…/{delivery_id}:redeliver` is never read as an id."""
from django.urls import re_path

from webhooks.views import WebhookViewSet

ID = r"(?P<{}>[^/:]+)"
WEBHOOK = ID.format("webhook_id")
DELIVERY = ID.format("delivery_id")

webhook_list = WebhookViewSet.as_view({"get": "list", "post": "create"}, detail=False)
webhook_detail = WebhookViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"},
                                        detail=True)
rotate_secret = WebhookViewSet.as_view({"post": "rotate_secret"}, detail=True)
deliveries = WebhookViewSet.as_view({"get": "deliveries"}, detail=True)
redeliver = WebhookViewSet.as_view({"post": "redeliver"}, detail=True)

urlpatterns = [
    re_path(r"^webhooks$", webhook_list, name="webhook-list"),
    re_path(rf"^webhooks/{WEBHOOK}$", webhook_detail, name="webhook-detail"),
    re_path(rf"^webhooks/{WEBHOOK}/rotate-secret$", rotate_secret, name="webhook-rotate-secret"),
    re_path(rf"^webhooks/{WEBHOOK}/deliveries$", deliveries, name="webhook-deliveries"),
    re_path(rf"^webhooks/{WEBHOOK}/deliveries/{DELIVERY}:redeliver$", redeliver, name="webhook-redeliver"),
    re_path(rf"^webhooks/{WEBHOOK}/deliveries/{DELIVERY}/redeliver$", redeliver, name="webhook-redeliver-alias"),
]

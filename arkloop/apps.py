from django.apps import AppConfig


class ArkloopConfig(AppConfig):
    name = "arkloop"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from arkloop import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from arkloop.authentication import principals_forget
        from arkloop.memo import memos_forget_on_change
        from arkloop.models import ApiKey, Membership, Org

        # A remembered API-key principal holds these rows: any change to one forgets them all.
        memos_forget_on_change(principals_forget, [ApiKey, Membership, Org, get_user_model()])

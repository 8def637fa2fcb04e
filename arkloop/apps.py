from django.apps import AppConfig


class ArkloopConfig(AppConfig):
    name = "arkloop"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from arkloop import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from arkloop.models import ApiKey, Membership, Org

        # A remembered API-key principal holds these rows: any change to one forgets them all.
        for model in (ApiKey, Membership, Org, get_user_model()):
            for signal in (post_save, post_delete):
                signal.connect(_forget_principals, sender=model, dispatch_uid=f"forget-principals-{model.__name__}")


def _forget_principals(**kwargs: object) -> None:
    from arkloop.authentication import principals_forget

    principals_forget()

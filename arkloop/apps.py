from django.apps import AppConfig


class ArkloopConfig(AppConfig):
    name = "arkloop"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from arkloop import schema  # noqa: F401  (registers the OpenAPI auth extension)

from django.apps import AppConfig


class ArkloopConfig(AppConfig):
    name = "arkloop"
    verbose_name = "Tenancy"

from django.apps import AppConfig


class PersonasConfig(AppConfig):
    name = "personas"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from personas.models import Persona, Route

        # Runs resolve memoized personas and routes (personas.selectors): any change forgets them.
        for model in (Persona, Route):
            for signal in (post_save, post_delete):
                signal.connect(_forget, sender=model, dispatch_uid=f"forget-resolved-{model.__name__}")


def _forget(**kwargs: object) -> None:
    from personas.selectors import personas_forget

    personas_forget()

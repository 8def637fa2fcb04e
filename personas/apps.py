from django.apps import AppConfig


class PersonasConfig(AppConfig):
    name = "personas"

    def ready(self) -> None:
        from arkloop.memo import memos_forget_on_change
        from personas.models import Persona, Route
        from personas.selectors import personas_forget

        # Runs resolve memoized personas and routes (personas.selectors): any change forgets them.
        memos_forget_on_change(personas_forget, [Persona, Route])

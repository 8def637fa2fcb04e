"""ASGI entry point served by Daphne: the whole HTTP API, including the SSE event stream."""
import os

from django.core.asgi import get_asgi_application

from arkloop.connection_close import honor_connection_close

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arkloop.settings")
django_asgi_app = get_asgi_application()
honor_connection_close()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)

application = ProtocolTypeRouter({"http": django_asgi_app})

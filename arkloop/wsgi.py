"""WSGI entry point (the API without the event stream; production serves arkloop.asgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arkloop.settings")
application = get_wsgi_application()

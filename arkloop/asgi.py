"""ASGI entry point served by Daphne: the whole HTTP API, including the SSE event stream."""
import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arkloop.settings")

from arkloop import otel  # noqa: E402

# Before the middleware chain is built: the Django instrumentation adds its middleware to settings.
otel.configure(service_name="arkloop-api", django=True)

from arkloop.body import BodyLimit  # noqa: E402
from arkloop.connection_close import honor_connection_close  # noqa: E402
from arkloop.daphne_body_limit import limit_daphne_request_bodies  # noqa: E402
from arkloop.daphne_errors import envelope_daphne_errors  # noqa: E402
from arkloop.resolving import get_asgi_application  # noqa: E402  (Django's, resolving each URL once)
from runs.stream.transport import check_daphne  # noqa: E402

django_asgi_app = get_asgi_application()
honor_connection_close()
limit_daphne_request_bodies()
envelope_daphne_errors()
check_daphne()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

from arkloop.operations import OperationsEndpoints  # noqa: E402
from arkloop.serving import SyncViewsInThreads  # noqa: E402
from runs.stream.asgi import EventStreamFastPath  # noqa: E402

# Bodies are read (and limited) first, by arkloop.body. Probes and scrapes (arkloop/operations.py)
# and event streams that pass their checks (runs/stream/asgi.py) are served without Django's
# request cycle. Requests for synchronous views (every DRF view) run Django's request cycle in one
# hop to a pool of threads (arkloop/serving.py); async views and the pool's overflow go to Django's.
# The URL is resolved once, by the stream path, and handed on in the scope (arkloop/resolving.py).
django_app = (SyncViewsInThreads(django_asgi_app, threads=settings.ARKLOOP_REQUEST_THREADS)
              if settings.ARKLOOP_REQUEST_THREADS > 0 else django_asgi_app)
application = ProtocolTypeRouter({"http": BodyLimit(OperationsEndpoints(EventStreamFastPath(django_app)))})

# Everything loaded so far (Django, the URL map, the models: ~125,000 objects) lives as long as
# the process: keep it out of the garbage collector's full collections, each of which traversed
# it again (~50 ms) while 1,000 streams connected (docs/performance.md).
gc.freeze()

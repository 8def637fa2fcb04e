from rest_framework.routers import SimpleRouter

from threads.views import ThreadViewSet

router = SimpleRouter(trailing_slash=False)
router.register("threads", ThreadViewSet, basename="thread")
urlpatterns = router.urls

from rest_framework.routers import SimpleRouter

from personas.views import PersonaViewSet, RouteViewSet

router = SimpleRouter(trailing_slash=False)
router.register("personas", PersonaViewSet, basename="persona")
router.register("routes", RouteViewSet, basename="route")
urlpatterns = router.urls

from rest_framework.routers import SimpleRouter

from segments.api import views

router = SimpleRouter()
router.register("segments", views.SegmentViewSet, basename="segment")
router.register("computed-traits", views.ComputedTraitViewSet, basename="computed-trait")

urlpatterns = router.urls

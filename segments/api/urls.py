from rest_framework.routers import SimpleRouter

from segments.api import views

router = SimpleRouter()
router.register("segments", views.SegmentViewSet, basename="segment")

urlpatterns = router.urls

from rest_framework.routers import SimpleRouter

from consent.api.requests import PrivacyRequestViewSet

router = SimpleRouter()
router.register("privacy-requests", PrivacyRequestViewSet, basename="privacy-request")

urlpatterns = router.urls

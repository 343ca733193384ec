from rest_framework.routers import SimpleRouter

from consent import api_consent

router = SimpleRouter()
router.register("consent-records", api_consent.ConsentRecordViewSet, basename="consent-record")
router.register("consent/propagation", api_consent.ConsentPropagationViewSet, basename="consent-propagation")

urlpatterns = router.urls

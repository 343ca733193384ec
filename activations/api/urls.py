from rest_framework.routers import SimpleRouter

from activations.api import views

router = SimpleRouter()
router.register("destinations", views.DestinationViewSet, basename="destination")
router.register("syncs", views.SyncViewSet, basename="sync")
router.register("sync-runs", views.SyncRunViewSet, basename="sync-run")
router.register("reconciliation", views.ReconciliationViewSet, basename="reconciliation")
router.register("triggers", views.TriggerViewSet, basename="trigger")
router.register("trigger-sends", views.TriggerSendViewSet, basename="trigger-send")

urlpatterns = router.urls

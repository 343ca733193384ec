from django.urls import path
from rest_framework.routers import SimpleRouter

from profiles.api import views

router = SimpleRouter()
router.register("profiles", views.ProfileViewSet, basename="profile")
router.register("sources", views.SourceViewSet, basename="source")
router.register("raw-events", views.RawEventViewSet, basename="raw-event")

urlpatterns = [
    path("profiles/<int:pk>/events/", views.ProfileEventList.as_view(), name="profile-events"),
    *router.urls,
]

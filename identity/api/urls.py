from django.urls import path
from rest_framework.routers import SimpleRouter

from identity.api import views

router = SimpleRouter()
# `POST /api/v1/merges/<id>/unmerge` works with or without the trailing slash.
router.trailing_slash = "/?"
router.register("merges", views.MergeViewSet, basename="merge")
router.register("unmerges", views.UnmergeViewSet, basename="unmerge")
router.register("identity-links", views.IdentityLinkViewSet, basename="identity-link")

urlpatterns = [
    path("review-queue/", views.ReviewQueueList.as_view(), name="review-queue"),
    *router.urls,
]

from django.urls import path

from identity import views_review

# No app_name: identity/urls.py includes this under the `identity` namespace.
urlpatterns = [
    path("identity/review/", views_review.review_queue, name="review_queue"),
    path("identity/review/decide/", views_review.review_decide, name="review_decide"),
    path("identity/review/<int:pk>/", views_review.review_link, name="review_link"),
    path("identity/merges/<int:pk>/unmerge/", views_review.merge_unmerge, name="merge_unmerge"),
]

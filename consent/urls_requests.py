from django.urls import path

from consent import views_requests

app_name = "privacy"
urlpatterns = [
    path("privacy-requests/", views_requests.request_list, name="request_list"),
    path("privacy-requests/new/", views_requests.request_new, name="request_new"),
    path("privacy-requests/<int:pk>/", views_requests.request_detail, name="request_detail"),
    path("privacy-requests/<int:pk>/extend/", views_requests.request_extend, name="request_extend"),
    path(
        "privacy-requests/<int:pk>/confirm-receipt/",
        views_requests.request_confirm_receipt,
        name="request_confirm_receipt",
    ),
    path("privacy-requests/<int:pk>/retry/", views_requests.request_retry, name="request_retry"),
    path("privacy-requests/<int:pk>/archive/", views_requests.request_archive, name="request_archive"),
]

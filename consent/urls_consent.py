from django.urls import path

from consent import views_consent

app_name = "consent"
urlpatterns = [
    path("profiles/<int:pk>/consent/new/", views_consent.consent_record_new, name="consent_record_new"),
    path("consent/propagation/", views_consent.propagation, name="propagation"),
]

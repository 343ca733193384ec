from django.urls import path

from cdp_site import views_audit

app_name = "audit"
urlpatterns = [
    path("audit/", views_audit.audit_log, name="log"),
]

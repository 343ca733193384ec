"""The health dashboard (trends) and alerts."""

from django.urls import path

from cdp_site import views_operations as views

app_name = "operations"

urlpatterns = [
    path("operations/health/", views.dashboard, name="dashboard"),
    path("operations/alerts/", views.alert_list, name="alert_list"),
    path("operations/alerts/rules/new/", views.alert_rule_new, name="alert_rule_new"),
    path("operations/alerts/rules/<int:pk>/edit/", views.alert_rule_edit, name="alert_rule_edit"),
    path("operations/alerts/rules/<int:pk>/delete/", views.alert_rule_delete_view, name="alert_rule_delete"),
    path("operations/alerts/<int:pk>/acknowledge/", views.alert_acknowledge_view, name="alert_acknowledge"),
]

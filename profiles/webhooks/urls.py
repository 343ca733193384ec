from django.urls import path

from profiles.webhooks.views import webhook_receive

urlpatterns = [path("<slug:slug>/", webhook_receive, name="webhook_receive")]

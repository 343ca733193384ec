from django.urls import re_path

from profiles.tracking.views import tracking_call

# Segment's paths, with or without a trailing slash.
urlpatterns = [
    re_path(r"^(?P<call_type>identify|track|page|screen|group|alias|batch)/?$", tracking_call, name="tracking_call"),
]

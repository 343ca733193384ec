from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults


@login_required
def home(request):
    return render(request, "home.html")


# Machine clients get JSON, people get the HTML page.
JSON_PREFIXES = ("/api/", "/v1/", "/webhooks/")


def page_not_found(request, exception=None):
    """handler404: a path that routes nowhere under the API, tracking or webhook prefixes answers
    JSON like the rest of those endpoints (clients parse every error the same way)."""
    if request.path.startswith(JSON_PREFIXES):
        return JsonResponse({"code": "not_found", "message": f"No endpoint at {request.path}."}, status=404)
    return defaults.page_not_found(request, exception)

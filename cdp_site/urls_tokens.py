"""A signed-in user's own REST API tokens: list, issue, revoke (views in cdp_site/views_tokens.py)."""

from django.urls import path

from cdp_site import views_tokens

app_name = "tokens"

urlpatterns = [
    path("account/tokens/", views_tokens.token_list, name="list"),
    path("account/tokens/issue/", views_tokens.token_issue, name="issue"),
    path("account/tokens/<int:pk>/revoke/", views_tokens.token_revoke, name="revoke"),
]

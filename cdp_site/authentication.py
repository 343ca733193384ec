from django.utils import timezone
from rest_framework import authentication, exceptions

from cdp_site.models import ApiToken


class HashedTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <token>`, checked against the stored SHA-256 of the token.

    Unknown, revoked and expired tokens answer 401 with a detail saying which (the token itself
    is never echoed or logged). Scopes are checked by the permission classes (403)."""

    def authenticate_credentials(self, key):
        token = ApiToken.objects.select_related("user").filter(token_hash=ApiToken.hash_token(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.", code="token_invalid")
        if token.is_revoked:
            raise exceptions.AuthenticationFailed("Token revoked.", code="token_revoked")
        now = timezone.now()
        if token.is_expired(now):
            raise exceptions.AuthenticationFailed("Token expired.", code="token_expired")
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

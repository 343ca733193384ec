from django.utils import timezone
from rest_framework import authentication, exceptions

from cdp_site.models import ApiToken


class HashedTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <token>`, checked against the stored SHA-256 of the token."""

    def authenticate_credentials(self, key):
        token = (
            ApiToken.objects.select_related("user").filter(token_hash=ApiToken.hash_token(key), is_active=True).first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

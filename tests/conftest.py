import pytest
from django.contrib.auth.models import Group

from cdp_site.roles import ROLES


@pytest.fixture
def make_user(django_user_model):
    """A user in the given role groups: make_user("marketer")."""

    def make(*roles, username=None, **fields):
        unknown = set(roles) - set(ROLES)
        assert not unknown, f"unknown roles {unknown}"
        name = username or ("-".join(roles) or "norole") + f"-{django_user_model.objects.count()}"
        user = django_user_model.objects.create_user(username=name, password="pw-123-secret", **fields)
        user.groups.set(Group.objects.filter(name__in=roles))
        return user

    return make

from rest_framework.permissions import DjangoModelPermissions


class RoleModelPermissions(DjangoModelPermissions):
    """Django model permissions (granted through role groups), including `view` for reads."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


def require_permissions(*perms: str) -> type:
    """A permission class for an action whose permission is not the HTTP method's default."""

    from rest_framework.permissions import BasePermission

    class RequirePermissions(BasePermission):
        def has_permission(self, request, view):
            return bool(request.user and request.user.is_authenticated and request.user.has_perms(perms))

    return RequirePermissions

"""REST API permissions: deny by default, role permissions, and API token scopes.

Every DRF view of the project answers through one of the two classes here:

- `RoleModelPermissions` (the default): the Django model permission of the view's queryset for
  the method (`view` for reads). A view without a queryset is refused (403), so a new view that
  forgets to declare what it needs is closed, never open.
- `require_permissions(...)`: named permissions, for actions whose permission is not the method's.

Both refuse anonymous callers (401) and check the scopes of an API token (403): a token needs
`read` for GET/HEAD/OPTIONS and `write` for anything else; the metrics endpoints also accept a
`metrics` token, which reaches nothing else. Session users are not scoped.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions

from cdp_site.models import ApiToken

READ, WRITE, METRICS = "read", "write", "metrics"
# URL names of the scrapers' endpoints: a `metrics` token may read these and nothing else.
METRICS_URL_NAMES = frozenset({"prometheus-metrics", "operations-metrics"})


def scopes_needed(request) -> tuple[str, ...]:
    """The token scopes of which a request needs one."""
    if request.method not in SAFE_METHODS:
        return (WRITE,)
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name in METRICS_URL_NAMES:
        return (READ, METRICS)
    return (READ,)


def missing_scope_message(request) -> str | None:
    """Why the request's API token may not make this request, or None (no token, or in scope)."""
    token = getattr(request, "auth", None)
    if not isinstance(token, ApiToken):
        return None
    needed = scopes_needed(request)
    if token.has_scope(*needed):
        return None
    return f"This API token lacks the {' or '.join(repr(scope) for scope in needed)} scope for {request.method}."


class ScopedPermission(BasePermission):
    """Authenticated, and the token (if any) is in scope; subclasses add the role check."""

    message = None

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 when no credentials were given
        problem = missing_scope_message(request)
        if problem:
            self.message = problem
            return False
        return self.has_role_permission(request, view)

    def has_role_permission(self, request, view) -> bool:
        raise NotImplementedError


class RoleModelPermissions(ScopedPermission, DjangoModelPermissions):
    """Django model permissions (granted through role groups), including `view` for reads."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view):
        return ScopedPermission.has_permission(self, request, view)

    def has_role_permission(self, request, view) -> bool:
        if getattr(view, "_ignore_model_permissions", False):
            return False  # deny by default: such a view must name its permission explicitly
        try:
            model = self._queryset(view).model
        except AssertionError:  # neither `queryset` nor `get_queryset()`: nothing names a permission
            self.message = "This endpoint declares no permission, so it is closed."
            return False
        return request.user.has_perms(self.get_required_permissions(request.method, model))


def require_permissions(*perms: str) -> type:
    """A permission class for an action whose permission is not the HTTP method's default."""
    if not perms:
        raise ValueError("require_permissions needs at least one permission")

    class RequirePermissions(ScopedPermission):
        permissions = perms

        def has_role_permission(self, request, view) -> bool:
            return request.user.has_perms(perms)

    return RequirePermissions

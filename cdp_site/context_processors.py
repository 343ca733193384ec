from functools import cached_property

from cdp_site.navigation import menu_for


class OpenAlerts:
    """The banner's figure: open alerts, counted on first use (only pages that render base.html
    ask), once per request, and only for users allowed to see alerts."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def count(self) -> int:
        if not self.user.has_perm("cdp_site.view_alert"):
            return 0
        from cdp_site.operations_models import Alert

        return Alert.objects.filter(status=Alert.OPEN).count()


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"menu": []}
    banner = getattr(request, "_open_alerts_banner", None)
    if banner is None:
        banner = request._open_alerts_banner = OpenAlerts(user)
    return {
        "menu": menu_for(user),
        "user_roles": sorted(group.name for group in user.groups.all()),
        "open_alerts_banner": banner,
    }

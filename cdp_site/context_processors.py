from cdp_site.navigation import menu_for


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"menu": []}
    return {
        "menu": menu_for(user),
        "user_roles": sorted(group.name for group in user.groups.all()),
    }

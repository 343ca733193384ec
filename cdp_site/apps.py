from django.apps import AppConfig


class CdpSiteConfig(AppConfig):
    name = "cdp_site"
    verbose_name = "Access"

    def ready(self):
        from cdp_site import checks  # noqa: F401 - registers the system checks

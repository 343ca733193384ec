"""Roles are Django groups. Each gets the permissions its work needs and no more.

`sync_role_permissions` is called by data migrations (with the historical app registry), so a
later migration that adds a model can extend a role by calling it again.
"""

MARKETER = "marketer"
GUEST_SERVICES = "guest_services"
PRIVACY_OFFICER = "privacy_officer"
INTEGRATION_ENGINEER = "integration_engineer"
ROLES = (MARKETER, GUEST_SERVICES, PRIVACY_OFFICER, INTEGRATION_ENGINEER)

ROLE_PERMISSIONS = {
    MARKETER: [
        # Operations: health dashboard, alerts, pilot gates (issue 7).
        "cdp_site.view_operationssnapshot",
        "cdp_site.view_alertrule",
        "cdp_site.view_alert",
        "cdp_site.view_pilotsignoff",
        "cdp_site.view_pilotsettings",
        "profiles.view_profile",
        "profiles.view_event",
        "profiles.view_traitvalue",
        "consent.view_consentrecord",
        "identity.view_identitymetricsnapshot",
        "segments.view_segment",
        "segments.add_segment",
        "segments.change_segment",
        "segments.view_segmentversion",
        "segments.add_segmentversion",
        "segments.view_computedtrait",
        "segments.add_computedtrait",
        "segments.change_computedtrait",
        "activations.view_destination",
        "activations.view_sync",
        "activations.add_sync",
        "activations.change_sync",
        "activations.view_syncrun",
        "activations.add_syncrun",
        "activations.view_syncrecord",
        "activations.view_trigger",
        "activations.add_trigger",
        "activations.change_trigger",
        "activations.view_triggersend",
    ],
    GUEST_SERVICES: [
        # Operations: health dashboard, alerts, pilot gates (issue 7).
        "cdp_site.view_operationssnapshot",
        "cdp_site.view_alertrule",
        "cdp_site.view_alert",
        "profiles.view_profile",
        "profiles.view_event",
        "profiles.view_traitvalue",
        "identity.view_identifier",
        "identity.view_identitylink",
        "identity.change_identitylink",
        "identity.view_merge",
        "identity.add_merge",
        "identity.view_unmerge",
        "identity.add_unmerge",
        "identity.view_identitymetricsnapshot",
        "identity.view_matchrun",
        "identity.add_matchrun",
        "consent.view_consentrecord",
        # Front desk and support hear "stop emailing me" first; withdrawing must be as easy as
        # granting, so they record consent on the profile page (audited, staff user in evidence).
        "consent.add_consentrecord",
    ],
    PRIVACY_OFFICER: [
        # Operations: health dashboard, alerts, pilot gates (issue 7).
        "cdp_site.view_operationssnapshot",
        "cdp_site.view_alertrule",
        "cdp_site.view_alert",
        "cdp_site.view_pilotsignoff",
        "cdp_site.add_pilotsignoff",
        "cdp_site.view_pilotsettings",
        # Data governance: retention policies and their purge log, profile health checks.
        "cdp_site.view_retentionpolicy",
        "cdp_site.change_retentionpolicy",
        "cdp_site.view_purgerun",
        "cdp_site.view_profilehealthrun",
        "cdp_site.add_profilehealthrun",
        "cdp_site.view_auditentry",
        "profiles.view_profile",
        "profiles.view_event",
        "profiles.view_traitvalue",
        "profiles.view_rawevent",
        "identity.view_identifier",
        "identity.view_merge",
        "identity.view_unmerge",
        "consent.view_consentrecord",
        "consent.add_consentrecord",
        "consent.view_privacyrequest",
        "consent.add_privacyrequest",
        "consent.change_privacyrequest",
        "activations.view_destination",
        "activations.view_sync",
        "activations.view_syncrun",
        "activations.view_syncrecord",
        "activations.view_trigger",
        "activations.view_triggersend",
        "activations.view_suppressionapplied",
    ],
    INTEGRATION_ENGINEER: [
        # Operations: health dashboard, alerts, pilot gates (issue 7).
        "cdp_site.view_operationssnapshot",
        "cdp_site.view_alertrule",
        "cdp_site.view_alert",
        "cdp_site.add_alertrule",
        "cdp_site.change_alertrule",
        "cdp_site.delete_alertrule",
        "cdp_site.change_alert",
        "cdp_site.view_pilotsignoff",
        "cdp_site.add_pilotsignoff",
        "cdp_site.view_pilotsettings",
        "cdp_site.change_pilotsettings",
        "cdp_site.view_retentionpolicy",
        "cdp_site.view_purgerun",
        "cdp_site.view_profilehealthrun",
        "profiles.view_source",
        "profiles.add_source",
        "profiles.change_source",
        "profiles.view_rawevent",
        "profiles.change_rawevent",
        "profiles.view_eventcontract",
        "profiles.change_eventcontract",
        "profiles.add_eventcontract",
        "profiles.view_schemadrift",
        "profiles.view_csvimport",
        "profiles.add_csvimport",
        "profiles.view_profile",
        "profiles.view_event",
        "identity.view_identifiertype",
        "identity.change_identifiertype",
        "identity.view_blockedvalue",
        "identity.add_blockedvalue",
        "identity.change_blockedvalue",
        "identity.delete_blockedvalue",
        "identity.view_identifier",
        "identity.view_identitylink",
        "identity.view_merge",
        "identity.view_identitymetricsnapshot",
        "identity.view_matchrun",
        "identity.add_matchrun",
        "activations.view_destination",
        "activations.add_destination",
        "activations.change_destination",
        "activations.view_sync",
        "activations.add_sync",
        "activations.change_sync",
        "activations.view_syncrun",
        "activations.add_syncrun",
        "activations.view_syncrecord",
        "activations.change_syncrecord",
        "activations.view_trigger",
        "activations.add_trigger",
        "activations.change_trigger",
        "activations.view_triggersend",
    ],
}


def sync_role_permissions(apps, schema_editor=None):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for code in codes:
            app_label, codename = code.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                permissions.append(permission)
        group.permissions.set(permissions)

"""The back-office menu. Each entry names the permission it needs, so menus follow roles."""

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class MenuEntry:
    label: str
    url_name: str
    permission: str  # "": every signed-in user (pages about oneself)


MENU = (
    MenuEntry("Health", "operations:dashboard", "cdp_site.view_operationssnapshot"),
    MenuEntry("Pilot gates", "pilot:gates", "cdp_site.view_pilotsignoff"),
    MenuEntry("Profiles", "profiles:profile_list", "profiles.view_profile"),
    MenuEntry("Segments", "segments:segment_list", "segments.view_segment"),
    MenuEntry("Destinations", "activations:destination_list", "activations.view_destination"),
    MenuEntry("Syncs", "activations:sync_list", "activations.view_sync"),
    MenuEntry("Triggers", "activations:trigger_list", "activations.view_trigger"),
    MenuEntry("Reconciliation", "activations:reconciliation", "activations.view_syncrun"),
    MenuEntry("Runbook", "activations:runbook", "activations.view_destination"),
    MenuEntry("Consent propagation", "consent:propagation", "activations.view_suppressionapplied"),
    MenuEntry("Privacy requests", "privacy:request_list", "consent.view_privacyrequest"),
    MenuEntry("Merge review", "identity:review_queue", "identity.view_identitylink"),
    MenuEntry("Identity metrics", "identity:metrics", "identity.view_identitymetricsnapshot"),
    MenuEntry("Identity simulation", "identity:simulation", "identity.view_identitymetricsnapshot"),
    MenuEntry("Sources", "profiles:source_list", "profiles.view_source"),
    MenuEntry("Source audit", "source_audit:audit", "profiles.view_source"),
    MenuEntry("Integration plan", "source_audit:integration_plan", "profiles.view_source"),
    MenuEntry("Handoff pack", "pilot:handoff", "profiles.view_source"),
    MenuEntry("Raw events", "profiles:raw_event_list", "profiles.view_rawevent"),
    MenuEntry("CSV import", "profiles:csv_import_list", "profiles.view_csvimport"),
    MenuEntry("Schema drift", "profiles:schema_drift", "profiles.view_schemadrift"),
    MenuEntry("Retention", "governance:retention", "cdp_site.view_retentionpolicy"),
    MenuEntry("Profile health", "governance:profile_health", "cdp_site.view_profilehealthrun"),
    MenuEntry("Audit log", "audit:log", "cdp_site.view_auditentry"),
    MenuEntry("API tokens", "tokens:list", ""),
)


def menu_for(user) -> list[dict]:
    entries = []
    for entry in MENU:
        if entry.permission and not user.has_perm(entry.permission):
            continue
        try:
            url = reverse(entry.url_name)
        except NoReverseMatch:
            continue  # a page not built yet stays out of the menu
        entries.append({"label": entry.label, "url": url, "url_name": entry.url_name})
    return entries

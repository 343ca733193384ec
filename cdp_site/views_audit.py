"""The audit log page: every staff action, newest first, searchable. Read-only."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.shortcuts import render

from cdp_site.filtersets_audit import AuditEntryFilter
from cdp_site.models import AuditEntry

PAGE_SIZE = 50


@login_required
@permission_required("cdp_site.view_auditentry", raise_exception=True)
def audit_log(request):
    filterset = AuditEntryFilter(request.GET or None, queryset=AuditEntry.objects.order_by("-at", "-id"))
    context = {"filter": filterset, "page": Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))}
    if request.htmx and not request.htmx.boosted:
        return render(request, "cdp_site/_audit_rows.html", context)
    return render(request, "cdp_site/audit_log.html", context)

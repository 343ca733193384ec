"""Destination pages: list, detail (contract, secret names, who uses it, connection test), create, edit."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from activations.connectors import connector_for
from activations.destinations import DestinationInvalid, destination_save, destination_test
from activations.forms import DestinationForm, connector_hints
from activations.models import Destination
from activations.selectors import contract_rows
from cdp_site.audit import actor_of


@login_required
@permission_required("activations.view_destination", raise_exception=True)
def destination_list(request):
    destinations = Destination.objects.annotate(
        sync_count=Count("syncs", distinct=True), trigger_count=Count("triggers", distinct=True)
    ).order_by("name")
    return render(
        request, "activations/destination_list.html", {"destinations": destinations, "kinds": Destination.KINDS}
    )


@login_required
@permission_required("activations.view_destination", raise_exception=True)
def destination_detail(request, slug):
    destination = get_object_or_404(Destination.objects.select_related("owner"), slug=slug)
    connector = connector_for(destination)
    stored = destination.secret_values
    context = {
        "destination": destination,
        "connector": connector,
        "contract": contract_rows(destination),
        # Names only: a secret's value never leaves the service layer.
        "secrets": [{"name": name, "set": bool(stored.get(name))} for name in destination.secret_names],
        "missing_secrets": [name for name in connector.required_secrets if not stored.get(name)],
        "problems": connector.check_configuration(),
        "syncs": destination.syncs.select_related("segment").order_by("name"),
        "triggers": destination.triggers.select_related("segment").order_by("name"),
    }
    return render(request, "activations/destination_detail.html", context)


def _form_page(request, form, destination=None, status=200):
    context = {"form": form, "destination": destination, "hints": connector_hints(), "kinds": Destination.KINDS}
    return render(request, "activations/destination_form.html", context, status=status)


@login_required
@permission_required("activations.add_destination", raise_exception=True)
def destination_new(request):
    form = DestinationForm(request.POST or None, kind=request.GET.get("kind") or "webhook")
    if request.method == "POST":
        if form.is_valid():
            values, secrets = form.service_values()
            try:
                values["owner"] = values.get("owner") or request.user
                destination = destination_save(secrets=secrets, actor=actor_of(request), **values)
            except DestinationInvalid as error:
                form.add_service_errors(error.errors)
            else:
                messages.success(request, f"Destination {destination.name} created.")
                return redirect("activations:destination_detail", slug=destination.slug)
        return _form_page(request, form, status=400)
    return _form_page(request, form)


@login_required
@permission_required("activations.change_destination", raise_exception=True)
def destination_edit(request, slug):
    destination = get_object_or_404(Destination, slug=slug)
    form = DestinationForm(request.POST or None, instance=destination)
    if request.method == "POST":
        if form.is_valid():
            values, secrets = form.service_values()
            try:
                destination = destination_save(
                    destination=form.instance, secrets=secrets, actor=actor_of(request), **values
                )
            except DestinationInvalid as error:
                form.add_service_errors(error.errors)
            else:
                messages.success(request, f"Destination {destination.name} saved.")
                return redirect("activations:destination_detail", slug=destination.slug)
        return _form_page(request, form, Destination.objects.get(pk=destination.pk), status=400)
    return _form_page(request, form, destination)


@login_required
@require_POST
@permission_required("activations.change_destination", raise_exception=True)
def destination_test_view(request, slug):
    destination = get_object_or_404(Destination, slug=slug)
    ok, message = destination_test(destination, actor=actor_of(request))
    if ok:
        messages.success(request, f"Connection test passed: {message}")
    else:
        messages.error(request, f"Connection test failed: {message}")
    return redirect("activations:destination_detail", slug=destination.slug)

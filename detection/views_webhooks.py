"""The webhooks page (/accounts/webhooks/): register, list, enable or disable, delete and test endpoints, with each
one's delivery log. Reads go through selectors_webhooks, writes through services.webhooks."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from detection import selectors_webhooks
from detection.forms_webhooks import WebhookEndpointForm
from detection.models import WebhookDelivery, WebhookEndpoint
from detection.services import webhooks


def _endpoint_or_404(request, endpoint_id: int) -> WebhookEndpoint:
    try:
        return selectors_webhooks.webhook_endpoint_get(user=request.user, endpoint_id=endpoint_id)
    except WebhookEndpoint.DoesNotExist:
        raise Http404("No such webhook endpoint.") from None  # someone else's reads like none at all


def _page(request, form: WebhookEndpointForm, *, status: int = 200, **extra):
    context = {"form": form, "endpoints": selectors_webhooks.webhook_endpoint_list(user=request.user), **extra}
    return render(request, "detection/webhooks.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_list(request):
    if request.method == "GET":
        return _page(request, WebhookEndpointForm())
    form = WebhookEndpointForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        endpoint, secret = webhooks.webhook_endpoint_create(user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        form.add_error(None, exc)  # to the fields it names, if it names any
        return _page(request, form, status=400)
    return _page(request, WebhookEndpointForm(), new_endpoint=endpoint, new_secret=secret)


@login_required
@require_POST
def webhook_delete(request, endpoint_id: int):
    endpoint = _endpoint_or_404(request, endpoint_id)
    webhooks.webhook_endpoint_delete(endpoint=endpoint)
    messages.success(request, f"The webhook endpoint {endpoint.url} is deleted, with its delivery log.")
    return redirect("accounts:webhooks")


@login_required
@require_POST
def webhook_set_active(request, endpoint_id: int):
    endpoint = _endpoint_or_404(request, endpoint_id)
    is_active = request.POST.get("is_active") == "1"
    webhooks.webhook_endpoint_set_active(endpoint=endpoint, is_active=is_active)
    state = "enabled: finished analyses are sent to it" if is_active else "disabled: nothing is sent to it"
    messages.success(request, f"The webhook endpoint {endpoint.url} is {state}.")
    return redirect("accounts:webhooks")


@login_required
@require_POST
def webhook_test(request, endpoint_id: int):
    delivery = webhooks.webhook_ping(endpoint=_endpoint_or_404(request, endpoint_id))
    if delivery.status == WebhookDelivery.Status.SUCCEEDED:
        messages.success(
            request, f"Test event delivered: {delivery.endpoint.url} answered HTTP {delivery.response_status}."
        )
    else:
        messages.error(
            request, f"Test event not delivered to {delivery.endpoint.url}: {delivery.last_error.split(': ', 1)[-1]}."
        )
    return redirect("accounts:webhooks")

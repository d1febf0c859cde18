from django import forms

from detection.services.webhooks import SECRET_MIN_LENGTH


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(
        label="Endpoint URL",
        max_length=2000,
        assume_scheme="https",
        help_text="Where finished analyses are POSTed: an http(s) address on the public internet.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/hooks/deepfake"}),
    )
    description = forms.CharField(label="Description", max_length=200, required=False)
    secret = forms.CharField(
        label="Signing secret",
        max_length=128,
        required=False,
        strip=True,
        help_text=f"Leave empty to have one generated (shown once). Your own: at least {SECRET_MIN_LENGTH} characters.",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )

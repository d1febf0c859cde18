from functools import cache

from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control

REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def home(request):
    return render(request, "home.html")


@cache
def _redoc_bundle() -> bytes:
    """The sidecar's Redoc bundle with its one hard-coded address elsewhere, the logo of its "API docs by Redocly"
    credit (no option turns it off), pointed at this site's own icon: the docs page then loads nothing from another
    host, as the Content-Security-Policy requires."""
    with open(finders.find(REDOC_BUNDLE), "rb") as bundle:
        source = bundle.read()
    return source.replace(REDOC_CDN_LOGO.encode(), static("img/favicon.svg").encode())


@cache_control(public=True, max_age=86400)
def redoc_bundle(request):
    return HttpResponse(_redoc_bundle(), content_type="text/javascript; charset=utf-8")

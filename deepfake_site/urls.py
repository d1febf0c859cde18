from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from deepfake_site import health, views
from detection.api.views import api_not_found

urlpatterns = [
    path("", views.home, name="home"),
    path("health", health.health, name="health"),
    path("accounts/", include("accounts.urls")),
    path("", include("detection.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("detection.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="drf_spectacular/redoc.html"),
        name="api-redoc",
    ),
    path("api/redoc/redoc.standalone.js", views.redoc_bundle, name="api-redoc-bundle"),
    re_path(r"^api/", api_not_found),
]

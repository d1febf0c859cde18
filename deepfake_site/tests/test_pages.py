import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_landing_page_for_visitors(client):
    response = client.get("/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Is this image real, or made by a machine?" in html
    assert 'href="/accounts/signup/"' in html
    assert 'id="theme-toggle"' in html


def test_htmx_comes_from_django_htmx_static_files_and_nothing_from_other_hosts(client):
    html = client.get("/").content.decode()

    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert any(src.endswith("django_htmx/htmx-2.min.js") for src in scripts)
    for src in scripts + re.findall(r'<link[^>]*href="([^"]+)"', html):
        assert not src.startswith(("http:", "https:", "//")), src
        assert finders.find(src.removeprefix("/static/")), f"{src} is not a static file of this project"


def test_csrf_token_travels_with_every_htmx_request(user_client):
    html = user_client.get("/accounts/profile/").content.decode()

    assert re.search(r"<body hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'>", html)

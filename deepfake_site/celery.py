"""The Celery application. Configuration comes from Django settings named CELERY_*."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deepfake_site.settings")

app = Celery("deepfake_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

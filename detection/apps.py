from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "detection"
    verbose_name = "Detection"

    def ready(self):
        from detection import signals  # noqa: F401  (connects the receivers)

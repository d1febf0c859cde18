from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "detection"
    verbose_name = "Detection"

    def ready(self):
        # Connect the signal receivers, and register the Celery tasks in every process: detection.dispatch sends
        # them by name, and without a broker runs them from the registry.
        from detection import signals, tasks  # noqa: F401

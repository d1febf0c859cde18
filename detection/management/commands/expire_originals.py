from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detection import services


class Command(BaseCommand):
    help = (
        "Delete the uploaded originals of finished analyses older than ORIGINALS_RETENTION_DAYS; verdicts, "
        "thumbnails, heatmaps and overlays stay. Safe to run again at any time, also after an interrupted run; "
        "Celery beat runs it every hour."
    )

    def handle(self, *args, **options):
        if settings.ORIGINALS_RETENTION_DAYS <= 0:
            self.stdout.write("ORIGINALS_RETENTION_DAYS is 0: originals are kept until their analysis is deleted.")
            return
        report = services.analysis_originals_expire()
        self.stdout.write(f"{report.expired} originals older than {settings.ORIGINALS_RETENTION_DAYS} days deleted.")
        if report.failed:
            raise CommandError(
                f"{report.failed} originals could not be deleted (see the log); run the command again later."
            )

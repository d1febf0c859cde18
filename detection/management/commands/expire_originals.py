from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from detection import services


class Command(BaseCommand):
    help = (
        "Delete the uploaded originals of finished analyses older than ORIGINALS_RETENTION_DAYS (and any left by "
        "uploads that chose not to keep theirs); verdicts, thumbnails, heatmaps and overlays stay. Safe to run again "
        "at any time, also after an interrupted run; Celery beat runs it every hour."
    )

    def handle(self, *args, **options):
        days = settings.ORIGINALS_RETENTION_DAYS
        report = services.analysis_originals_expire()
        rule = f"older than {days} days" if days > 0 else "not to be kept (ORIGINALS_RETENTION_DAYS=0 keeps the rest)"
        self.stdout.write(f"{report.expired} originals {rule} deleted.")
        if report.failed:
            raise CommandError(
                f"{report.failed} originals could not be deleted (see the log); run the command again later."
            )

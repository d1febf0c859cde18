from django.core.management.base import BaseCommand

from detection import services


class Command(BaseCommand):
    help = (
        "Queue again the analyses stuck in queued (never reached the broker, or lost there) or running past their "
        "time limit; fail those that used up their attempts. Safe to run at any time; Celery beat runs it too."
    )

    def handle(self, *args, **options):
        report = services.analysis_sweep()
        self.stdout.write(f"{report.requeued} analyses queued again, {report.failed} failed after too many attempts.")

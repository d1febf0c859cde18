from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from detection.services import regression


class Command(BaseCommand):
    help = (
        "Freeze the files of every confirmed flag whose owner consented into the next version of the regression set "
        "(as the flags' admin action does). Refused when there is nothing to freeze, a class is missing, or nothing "
        "changed since the last version."
    )

    def handle(self, *args, **options):
        try:
            regression_set = regression.regression_set_build()
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Built {regression_set}.")

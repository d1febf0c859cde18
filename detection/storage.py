"""Where analysis files live: the "default" storage for originals and weights, "results" for derived pictures.

Both are aliases of settings.STORAGES, chosen by environment (local disk, S3, Cloudinary). The results storage is
looked up lazily, like Django's default_storage, so that it follows settings changes in tests.
"""

from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty


class _ResultsStorage(LazyObject):
    def _setup(self):
        self._wrapped = storages["results"]


results_storage = _ResultsStorage()


def get_results_storage():
    """The results storage, for FileField(storage=...): a callable keeps the alias out of migrations."""
    return results_storage


@receiver(setting_changed)
def _forget_results_storage(*, setting, **kwargs):
    if setting == "STORAGES":
        results_storage._wrapped = empty


def file_signed_url(file) -> str | None:
    """A short-lived signed URL for a stored file (S3, Cloudinary), or None where files have no such URL (local
    disk): the owner-checked media view then streams the file itself."""
    from detection.cloudinary_storage import CloudinaryStorage

    if not file:
        return None
    storage = file.storage  # lazy storages pass isinstance and attribute checks through to the real one
    if getattr(storage, "querystring_auth", False) or isinstance(storage, CloudinaryStorage):
        return storage.url(file.name)
    return None

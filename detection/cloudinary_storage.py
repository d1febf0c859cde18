"""A Django storage on Cloudinary for result pictures (thumbnails, heatmaps, overlays), through the cloudinary SDK.

Assets are uploaded with the "authenticated" delivery type: neither the file nor any transformation of it can be
fetched without a signature, so a result is never at a guessable public URL. Reads and url() use the signed,
expiring download URL of the Upload API. Names map to public IDs without their extension ("results/x.png" is
public ID "results/x", format png), and the same name always means the same asset, so saving overwrites.
"""

import time

import cloudinary
import cloudinary.api
import cloudinary.uploader
import cloudinary.utils
from cloudinary.exceptions import Error, NotFound
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible
from storages.utils import get_available_overwrite_name

RESOURCE_TYPE = "image"
DELIVERY_TYPE = "authenticated"


class CloudinaryError(OSError):
    """Cloudinary refused or could not answer a request; an OSError like any other storage failure."""


@deconstructible
class CloudinaryStorage(Storage):
    file_overwrite = True

    def __init__(
        self,
        *,
        cloud_name: str,
        api_key: str,
        api_secret: str,
        expire: int = 300,
        folder: str = "",
        timeout: float = 10.0,
    ):
        self.credentials = {"cloud_name": cloud_name, "api_key": api_key, "api_secret": api_secret}
        self.expire = expire
        self.timeout = timeout
        self.folder = folder.strip("/")
        self._http = None

    @property
    def http(self):
        """The connection pool for downloads, configured like the SDK's own (proxy, keep-alive)."""
        if self._http is None:
            self._http = cloudinary.utils.get_http_connector(cloudinary.config(), cloudinary.CERT_KWARGS)
        return self._http

    def _public_id(self, name: str) -> tuple[str, str]:
        stem, _, extension = name.rpartition(".")
        if not stem or "/" in extension:
            raise ValueError(f"“{name}” has no file extension; Cloudinary stores images by public ID and format.")
        return (f"{self.folder}/{stem}" if self.folder else stem), extension.lower()

    def _options(self) -> dict:
        return {**self.credentials, "resource_type": RESOURCE_TYPE, "type": DELIVERY_TYPE, "timeout": self.timeout}

    def get_available_name(self, name, max_length=None):
        return get_available_overwrite_name(name, max_length)

    def _save(self, name, content):
        public_id, extension = self._public_id(name)
        content.seek(0)
        data = content.read()
        try:
            result = cloudinary.uploader.upload(
                (name.rsplit("/", 1)[-1], data),
                public_id=public_id,
                format=extension,
                overwrite=True,
                invalidate=True,
                unique_filename=False,
                use_filename=False,
                **self._options(),
            )
        except Error as exc:
            raise CloudinaryError(f"Cloudinary did not store {name}: {exc}") from exc
        if result.get("public_id") != public_id:
            raise CloudinaryError(f"Cloudinary stored {name} as {result.get('public_id')!r}, not {public_id!r}.")
        return name

    def delete(self, name):
        if not name:
            return
        public_id, _ = self._public_id(name)
        try:
            result = cloudinary.uploader.destroy(public_id, invalidate=True, **self._options())
        except Error as exc:
            raise CloudinaryError(f"Cloudinary did not delete {name}: {exc}") from exc
        # "not found" is success: deleting is safe to repeat (a retention run or a deletion interrupted earlier).
        if result.get("result") not in {"ok", "not found"}:
            raise CloudinaryError(f"Cloudinary did not delete {name}: {result}")

    def exists(self, name):
        public_id, _ = self._public_id(name)
        try:
            cloudinary.api.resource(public_id, **self._options())
        except NotFound:
            return False
        except Error as exc:
            raise CloudinaryError(f"Cloudinary did not say whether {name} exists: {exc}") from exc
        return True

    def url(self, name):
        """A signed download URL that stops working after `expire` seconds."""
        public_id, extension = self._public_id(name)
        return cloudinary.utils.private_download_url(
            public_id, extension, expires_at=int(time.time()) + self.expire, **self._options()
        )

    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("Cloudinary files are read-only; save a new file instead.")
        try:
            response = self.http.request("GET", self.url(name), preload_content=True, timeout=self.timeout)
        except Exception as exc:  # urllib3's errors: the service cannot be reached
            raise CloudinaryError(f"Cloudinary could not be reached to read {name}: {exc}") from exc
        if response.status == 404:
            raise FileNotFoundError(f"{name} is not on Cloudinary.")
        if response.status != 200:
            raise CloudinaryError(f"Cloudinary answered {response.status} when reading {name}.")
        return ContentFile(response.data, name=name)

    def size(self, name):
        with self.open(name) as handle:
            return len(handle.read())

"""Errors the ml package raises for problems a person can fix; each message says what went wrong and what to do."""


class MLError(Exception):
    """Base class: the message is written for the person who has to act on it."""


class UnknownArchitectureError(MLError, ValueError):
    pass


class UnreadableImageError(MLError, ValueError):
    """The bytes are not an image Pillow can decode (or are empty, truncated, or too large to decode safely)."""


class TooManyPixelsError(UnreadableImageError):
    """The image declares more pixels than may be decoded: too large, or a decompression bomb."""


class UnreadableVideoError(MLError, ValueError):
    """The file is not a video we can decode (no video stream, damaged, truncated, empty, or too large)."""


class WeightsError(MLError):
    """Base class for every problem with a weights file."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    pass


class CorruptWeightsError(WeightsError):
    pass


class NotAStateDictError(WeightsError):
    pass


class ChecksumMismatchError(WeightsError):
    def __init__(self, path, expected: str, actual: str):
        self.expected, self.actual = expected, actual
        super().__init__(
            f"{path} has SHA-256 {actual}, but {expected} was expected: the file is not the one that was registered "
            "(changed, truncated or replaced). Download or upload it again."
        )


class ArchitectureMismatchError(WeightsError):
    def __init__(self, architecture: str, missing: list[str], unexpected: list[str], mismatched: list[str]):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched

        def listing(title: str, items: list[str]) -> str:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            return f"{title} ({len(items)}): {shown}"

        parts = [
            listing(title, items)
            for title, items in (
                ("shapes that differ", mismatched),
                ("missing keys", missing),
                ("unexpected keys", unexpected),
            )
            if items
        ]
        super().__init__(
            f"These weights do not fit the “{architecture}” architecture. " + "; ".join(parts) + ". "
            "Check that the architecture chosen for the model is the one the weights were trained with."
        )


class HubError(WeightsError):
    pass


class HubUnavailableError(HubError):
    pass


class HubNotFoundError(HubError):
    pass


class TrainingDataError(MLError):
    """The training or evaluation data cannot be used as given (missing folder, one class, no readable image…)."""

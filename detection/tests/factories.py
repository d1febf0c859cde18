"""Rows as the pipeline leaves them, for tests that need analyses to list, filter or clean up but not to run."""

import hashlib

import factory

from detection.models import Analysis


class AnalysisFactory(factory.django.DjangoModelFactory):
    """A queued upload; AnalysisFactory(done=True, probability_fake=0.2) is a finished one, failed=True a failed one."""

    class Meta:
        model = Analysis

    original_name = factory.Sequence(lambda n: f"photo-{n}.jpg")
    sha256 = factory.LazyAttribute(lambda a: hashlib.sha256(a.original_name.encode()).hexdigest())
    media_type = "image/jpeg"
    file_size = 2048
    width = 320
    height = 240

    class Params:
        done = factory.Trait(
            status=Analysis.Status.DONE,
            probability_fake=0.9,
            threshold=0.5,
            label=factory.LazyAttribute(lambda a: "fake" if a.probability_fake >= a.threshold else "real"),
            model_version="test-detector 1",
        )
        failed = factory.Trait(status=Analysis.Status.FAILED, error_message="The image could not be decoded.")

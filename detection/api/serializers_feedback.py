"""What the API reads and answers about flags of verdicts (a user's report that a verdict is wrong)."""

from rest_framework import serializers

from detection.models import Analysis, VerdictFlag


class VerdictFlagInputSerializer(serializers.Serializer):
    """Types only: what a flag may say is the service's (and the model's) to judge, with one set of messages."""

    label = serializers.CharField(help_text="The label you say is right: `real` or `fake`.")
    note = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="Why, optionally (at most 2000 characters)."
    )
    consent = serializers.BooleanField(
        required=False,
        default=False,
        help_text="True: you allow the file to be kept to test future models, once staff confirm your report.",
    )


class VerdictFlagSummarySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=VerdictFlag.Status.choices)
    label = serializers.ChoiceField(choices=Analysis.Label.choices, help_text="The label you said is right.")


class VerdictFlagSerializer(VerdictFlagSummarySerializer):
    note = serializers.CharField()
    consent = serializers.BooleanField()
    model_version = serializers.CharField(help_text="The model whose verdict you flagged.")
    probability_fake = serializers.FloatField(allow_null=True, help_text="Its P(fake) when you flagged it.")
    created_at = serializers.DateTimeField()
    reviewed_at = serializers.DateTimeField(
        allow_null=True, help_text="When staff confirmed or rejected it; after that it is final."
    )

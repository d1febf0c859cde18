"""The stability check (ml.stability) in words, for the result page."""

from django import template

from detection import engine

register = template.Library()


@register.filter
def stability_reason(stability: dict) -> str:
    """Why a verdict is unstable: “re-saving as JPEG 70 flips the verdict (spread 0.22)”, or, when no label flips,
    “re-encoding the image moves its probability of being fake by 0.22 (more than 0.15)”."""
    spread = stability.get("spread", 0.0)
    flips = stability.get("flips") or []
    if not flips:
        limit = stability.get("max_spread", 0.0)
        return f"re-encoding the image moves its probability of being fake by {spread:.2f} (more than {limit:.2f})"
    descriptions = engine.stability_variant_descriptions()
    changes = [descriptions.get(name, name) for name in flips]
    said = changes[0] if len(changes) == 1 else ", ".join(changes[:-1]) + " or " + changes[-1]
    return f"{said} flips the verdict (spread {spread:.2f})"

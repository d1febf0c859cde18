"""Small formatting filters for the detection pages."""

from django import template

from detection.models import Analysis

register = template.Library()


@register.filter
def percent(value, digits: int = 0) -> str:
    """0.8342 → “83 %”; with an argument, that many decimals."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def verdict_label(verdict: str | None) -> str:
    if not verdict:
        return "No verdict"
    return Analysis.Verdict(verdict).label


@register.filter
def duration(milliseconds) -> str:
    """Milliseconds as people read them: “84 ms”, “1.3 s”."""
    if milliseconds is None:
        return "—"
    milliseconds = float(milliseconds)
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    return f"{milliseconds / 1000:.1f} s"


@register.filter
def metric(value) -> str:
    """A validation metric: ratios with three decimals, counts as they are, missing ones as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@register.filter
def box_position(face, analysis) -> str:
    """CSS placing a face's box over the shown image, in percent of the image's size."""
    width, height = analysis.width or 1, analysis.height or 1
    return (
        f"left: {face.left / width * 100:.2f}%; top: {face.top / height * 100:.2f}%; "
        f"width: {face.width / width * 100:.2f}%; height: {face.height / height * 100:.2f}%"
    )

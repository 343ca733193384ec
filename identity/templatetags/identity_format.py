"""Percentages for the identity pages: one decimal, and never "100 %" unless it is all of them."""

from django import template

register = template.Library()


def _format(share: float) -> str:
    exact = share * 100
    value = round(exact, 1)
    # 912 of 914 is not "100%", and 1 of 5,000 is not "0%".
    if value == 100 and exact < 100:
        value = 99.9
    elif value == 0 and exact > 0:
        value = 0.1
    return f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"


@register.simple_tag
def share(part, whole) -> str:
    """`{% share matched total %}`: part of whole as a percentage, or a dash when whole is 0."""
    return _format(part / whole) if whole else "–"


@register.filter
def percent(rate) -> str:
    """A rate from 0 to 1 as a percentage; a dash for None."""
    return "–" if rate is None else _format(rate)

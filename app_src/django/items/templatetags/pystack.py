"""Number filters for page.html, formatting like the Flask template's "{:,.2f}" and "{:.3%}".

Django's floatformat goes through Decimal and the locale machinery; these are plain format
calls, so /page measures the template loop rather than number localisation.
"""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def grouped(value: float, places: int) -> str:
    """12345.678|grouped:2 -> '12,345.68'."""
    return f"{value:,.{int(places)}f}"


@register.filter
def percent(value: float, places: int) -> str:
    """0.01234|percent:3 -> '1.234%'."""
    return f"{value:.{int(places)}%}"

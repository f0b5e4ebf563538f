"""``{% grid_link text field=value ... %}``: a cell of a results table as a link to the task grid filtered to that
row's tasks (issue 28: every row opens its evidence). Filters are the grid's (``label``, ``key``, ``class_name``,
``tie``, ...) and the payload fields of ``selectors.task_grid.PAYLOAD_FILTERS``; an empty value is left out. Where
the context has no ``grid_url`` (the offline report), the text stays plain."""
from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.http import urlencode

register = template.Library()


@register.simple_tag(takes_context=True)
def grid_link(context, text, **filters):
    grid_url = context.get("grid_url")
    query = {name: str(value) for name, value in filters.items() if value is not None and str(value) != ""}
    if not grid_url or not query:
        return format_html("{}", text)
    return format_html('<a class="grid-link row-link" href="{}?{}" title="the tasks of this row, with every answer">'
                       '{}</a>', grid_url, urlencode(query), text)

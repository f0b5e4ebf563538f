"""Template filters used by the task pages (loaded as a builtin)."""
from django import template

from analysis.datasets.metadata import is_web_link

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``mapping[key]`` or None; for re-filling a form from a dict."""
    if hasattr(mapping, "get"):
        return mapping.get(key)
    return None


@register.filter
def web_links(links):
    """Only the ``http(s)://`` addresses of ``links``: a ``javascript:`` or ``data:`` link from class metadata
    stored before registration refused them never becomes clickable."""
    return [link for link in links or () if isinstance(link, str) and is_web_link(link)]


@register.filter
def label_word(value, words):
    """A label value in the researcher's words: ``words`` is the page's ``selectors.task_grid.LabelWords``; without
    one, nothing (None, NaN) is blank and a value shows as stored."""
    from annotation.selectors.task_grid import LabelWords  # deferred: template libraries load before the apps

    return (words if callable(words) else LabelWords({}))(value)

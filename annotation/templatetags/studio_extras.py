"""Template filters used by the task pages (loaded as a builtin)."""
from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``mapping[key]`` or None; for re-filling a form from a dict."""
    if hasattr(mapping, "get"):
        return mapping.get(key)
    return None

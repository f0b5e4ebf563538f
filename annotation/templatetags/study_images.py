"""``{% output_img %}`` and ``{% artifact_img %}``: an image of a results partial, as the context's ``images`` gives it
(a server URL on the results page, a ``data:`` URI in the report; see :mod:`annotation.reports.study_report`)."""
from django import template

register = template.Library()


def _images(context):
    images = context.get("images")
    if images is None:
        raise template.TemplateSyntaxError(
            "a results partial needs `images` in its context (annotation.reports.study_report)")
    return images


@register.simple_tag(takes_context=True)
def output_img(context, name, *alt):
    """``<img>`` of the study's output file ``name`` (a plot); the ``alt`` parts are joined."""
    return _images(context).output_img(str(name), "".join(map(str, alt)))


@register.simple_tag(takes_context=True)
def artifact_img(context, name, *alt):
    """``<img>`` of the artifact ``name`` (a task's image); in the report nothing once past its cap of images."""
    return _images(context).artifact_img(str(name), "".join(map(str, alt)))

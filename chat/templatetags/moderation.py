"""What the admin index shows of moderation: how many records wait for a review."""

from django import template

from chat.moderation import review_queue

register = template.Library()


@register.simple_tag
def review_queue_size() -> int:
    return review_queue().count()

"""What a moderator submits, and what the admin tells them after."""

from django import forms
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from chat.models import ModerationEvent
from chat.moderation import NOTE_MAX_CHARS

Action = ModerationEvent.Action


class ModerationForm(forms.Form):
    # Not "action": the changelist's own action menu posts under that name.
    moderation = forms.ChoiceField(choices=Action.choices, widget=forms.HiddenInput)
    note = forms.CharField(
        required=False,
        max_length=NOTE_MAX_CHARS,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": NOTE_MAX_CHARS}),
        help_text=_("Kept in each record's moderation log, with your name and the time."),
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("moderation") not in (None, Action.REVIEWED) and not data.get("note"):
            self.add_error("note", _("Say why: flagging, hiding and unhiding need a note."))
        return data


def records_phrase(count: int) -> str:
    return ngettext("%(count)s record", "%(count)s records", count) % {"count": count}


def done_selection(action: str, done: int, selected: int) -> str:
    """The message after an action on a selection: what was done, to how many."""
    label = Action(action).label
    message = gettext("%(action)s: %(records)s.") % {
        "action": label,
        "records": records_phrase(done),
    }
    if done < selected:
        already = records_phrase(selected - done)
        message += " " + gettext("%(records)s already were.") % {"records": already}
    return message

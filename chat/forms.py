from django import forms
from django.utils.text import Truncator

from . import services
from .models import INSTRUCTIONS_MAX_LENGTH

TITLE_MAX_LENGTH = 200


def _content_field(required=True):
    return forms.CharField(
        label="Message",
        required=required,
        strip=False,
        # No `maxlength`: a browser would cut a long paste silently; the
        # server refuses too-long text with a message saying by how much.
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class MessageForm(forms.Form):
    content = _content_field()

    def __init__(self, *args, with_files=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["content"].error_messages["required"] = "Write a message before sending."
        # A message may be files alone.
        self.with_files = with_files
        if with_files:
            self.fields["content"].required = False

    def clean_content(self):
        if self.with_files and not (self.cleaned_data.get("content") or "").strip():
            return ""
        try:
            return services.clean_content(self.cleaned_data.get("content"))
        except services.SendRefused as refused:
            raise forms.ValidationError(refused.message, code=refused.code) from None


DESCRIPTION_SHOWN = 200  # characters of an assistant's description beside the picker


class AssistantSelect(forms.Select):
    """A plain <select>; each option carries its assistant's description
    (`data-description`), which the page's script shows beside the picker as
    the choice changes (static/chat/assistants.js)."""

    def __init__(self, descriptions, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.descriptions = descriptions

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        description = self.descriptions.get(str(value), "")
        if description:
            option["attrs"]["data-description"] = Truncator(description).chars(DESCRIPTION_SHOWN)
        return option


def assistant_field(form, active, initial=None):
    """Give `form` its `assistant` <select> of the `active` assistants (one
    list, read once per page) when there is one to choose; no row means
    replies go to N8N_CHAT_WORKFLOW and there is nothing to pick."""
    if not active:
        return
    form.assistants = {str(a.pk): a for a in active}
    form.fields["assistant"] = forms.ChoiceField(
        label="Assistant",
        required=False,
        choices=[(a.pk, a.name) for a in active],
        initial=initial or active[0].pk,
        widget=AssistantSelect(
            {str(a.pk): " ".join((a.description or "").split()) for a in active},
            attrs={"data-assistant-picker": ""},
        ),
        error_messages={"invalid_choice": "That assistant is not available."},
    )


class NewConversationForm(forms.Form):
    title = forms.CharField(label="Title (optional)", required=False, max_length=TITLE_MAX_LENGTH)
    content = _content_field(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["content"].label = "First message (optional)"
        from .assistants import active_assistants

        assistant_field(self, active_assistants())

    def clean_assistant(self):
        """The chosen assistant (None: the default)."""
        value = self.cleaned_data.get("assistant")
        return self.assistants.get(str(value)) if value else None

    def clean_content(self):
        text = self.cleaned_data.get("content") or ""
        if not text.strip():
            return ""
        try:
            return services.clean_content(text)
        except services.SendRefused as refused:
            raise forms.ValidationError(refused.message, code=refused.code) from None


class RenameForm(forms.Form):
    title = forms.CharField(label="Title", max_length=TITLE_MAX_LENGTH)

    def clean_title(self):
        title = " ".join(self.cleaned_data["title"].split())
        if not title:
            raise forms.ValidationError("A title cannot be empty.")
        return title


class InstructionsForm(forms.Form):
    instructions = forms.CharField(
        label="Instructions",
        required=False,
        max_length=INSTRUCTIONS_MAX_LENGTH,
        help_text=(
            "Sent to the assistant with every message of this conversation "
            f"(at most {INSTRUCTIONS_MAX_LENGTH:,} characters). Empty: your default "
            "instructions from Settings."
        ),
        # No `maxlength` attribute: a browser would cut a paste silently.
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instructions"].widget.attrs.pop("maxlength", None)
        self.fields["instructions"].error_messages["max_length"] = (
            f"Instructions are limited to {INSTRUCTIONS_MAX_LENGTH:,} characters "
            "(these have %(show_value)s)."
        )

    def clean_instructions(self):
        return (self.cleaned_data.get("instructions") or "").strip()

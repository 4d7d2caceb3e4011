from django import forms

from . import services

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


class NewConversationForm(forms.Form):
    title = forms.CharField(label="Title (optional)", required=False, max_length=TITLE_MAX_LENGTH)
    content = _content_field(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["content"].label = "First message (optional)"

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

from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import INSTRUCTIONS_MAX_LENGTH, Theme, UserSettings


class SignupForm(UserCreationForm):
    """Django's own form (username, password1, password2) and password
    validators, plus an optional e-mail address: the one a password reset
    mail goes to (without one, a forgotten password cannot be reset)."""

    email = forms.EmailField(
        required=False,
        max_length=254,
        help_text="Optional: where a password reset link is sent if you forget your password.",
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class SettingsForm(forms.ModelForm):
    """The user's own settings: default instructions and the theme."""

    class Meta:
        model = UserSettings
        fields = ("instructions", "theme")
        labels = {"instructions": "Default instructions", "theme": "Theme"}
        help_texts = {
            "instructions": (
                "Sent to the assistant in every conversation that has no instructions "
                f"of its own (at most {INSTRUCTIONS_MAX_LENGTH:,} characters)."
            ),
        }
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 6}),
            "theme": forms.RadioSelect,
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["instructions"]
        # No `maxlength` attribute: a browser would cut a paste silently.
        field.widget.attrs.pop("maxlength", None)
        field.error_messages["max_length"] = (
            f"Instructions are limited to {INSTRUCTIONS_MAX_LENGTH:,} characters "
            "(these have %(show_value)s)."
        )
        self.fields["theme"].choices = Theme.choices

    def clean_instructions(self):
        return (self.cleaned_data.get("instructions") or "").strip()

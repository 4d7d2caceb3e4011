from django import forms
from django.contrib.auth.forms import UserCreationForm


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

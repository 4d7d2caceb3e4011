from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    """Django's own form (username, password1, password2) and password validators."""

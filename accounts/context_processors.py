"""What every page's `<html>` needs from the user's settings: the theme
(`data-theme`), so the server draws the chosen colours from the first byte.

The theme rides in the session (put there at login and when the settings are
saved), so a page costs no query for it; a session from before that reads it
from the database once, lazily (only a page that renders it asks).
"""

from .models import Theme

SESSION_KEY = "accounts_theme"


def remember_theme(request, theme: str) -> None:
    if hasattr(request, "session"):
        request.session[SESSION_KEY] = theme


def on_login(sender, request, user, **kwargs):
    """user_logged_in: the user's theme into the new session."""
    from .models import UserSettings

    if request is not None:
        remember_theme(request, UserSettings.theme_of(user.pk))


def theme(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"theme": Theme.SYSTEM.value}
    return {"theme": _LazyTheme(request)}


class _LazyTheme:
    def __init__(self, request):
        self.request = request
        self._value = None

    def __str__(self):
        if self._value is None:
            from .models import UserSettings

            value = self.request.session.get(SESSION_KEY)
            if value not in Theme.values:
                value = UserSettings.theme_of(self.request.user.pk)
                remember_theme(self.request, value)
            self._value = value
        return self._value

    def __eq__(self, other):
        return str(self) == other

    def __hash__(self):
        return hash(str(self))

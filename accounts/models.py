"""A user's own settings (`accounts_user_settings`): one row per user, made
the first time the settings page is saved; no row means the defaults."""

from django.conf import settings
from django.db import models

# The same bound as a conversation's instructions (chat_conversations.instructions).
INSTRUCTIONS_MAX_LENGTH = 4000


class Theme(models.TextChoices):
    SYSTEM = "system", "System (follow the device)"
    LIGHT = "light", "Light"
    DARK = "dark", "Dark"


class UserSettings(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_settings"
    )
    # Sent as `input.instructions` for every conversation that has none of its own.
    instructions = models.TextField(
        blank=True, default="", db_default="", max_length=INSTRUCTIONS_MAX_LENGTH
    )
    theme = models.CharField(
        max_length=16, choices=Theme.choices, default=Theme.SYSTEM, db_default=Theme.SYSTEM.value
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "accounts_user_settings"
        verbose_name = "user settings"
        verbose_name_plural = "user settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(theme__in=Theme.values), name="accounts_settings_theme_valid"
            ),
        ]

    def __str__(self):
        return f"settings of {self.user}"

    @classmethod
    def of(cls, user) -> "UserSettings":
        """The user's settings, unsaved defaults when they have none yet."""
        if not getattr(user, "is_authenticated", False):
            return cls()
        found = cls.objects.filter(user=user).first()
        return found or cls(user=user)

    @classmethod
    def theme_of(cls, user_id) -> str:
        found = cls.objects.filter(user_id=user_id).values_list("theme", flat=True).first()
        return found if found in Theme.values else Theme.SYSTEM.value


def instructions_of(user_id):
    """The user's default instructions as a one-column queryset (`user_id` may
    be an OuterRef: a send reads them inside its own statement)."""
    return UserSettings.objects.filter(user_id=user_id).values("instructions")


def default_instructions(user_id) -> str:
    row = instructions_of(user_id).first()
    return row["instructions"] if row else ""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # chat plugs into the generic task system; tasks/ never imports chat/.
        from . import tasktypes

        tasktypes.register()

        # A successful login forgives that username's failed attempts.
        from django.contrib.auth.signals import user_logged_in

        from chatproject.limits import forgive_failed_logins

        user_logged_in.connect(forgive_failed_logins, dispatch_uid="forgive_failed_logins")

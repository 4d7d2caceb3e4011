from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # chat plugs into the generic task system; tasks/ never imports chat/.
        from . import tasktypes

        tasktypes.register()

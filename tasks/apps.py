from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Async tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core.signals import request_finished, request_started

        from .outbound import dispatch

        request_started.connect(dispatch.hold_for_response, dispatch_uid="tasks.hold_dispatch")
        request_finished.connect(
            dispatch.release_after_response, dispatch_uid="tasks.release_dispatch"
        )

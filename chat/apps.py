from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # chat plugs into the generic task system; tasks/ never imports chat/.
        from django.db.models.signals import post_migrate

        from .replies import feedback, tasktypes

        tasktypes.register()
        feedback.register()

        # n8n_setup's discovery hands its findings to chat (n8n/ knows no app).
        from n8n import discovery

        from .assistants import apply_discovered

        discovery.set_sink(apply_discovered)

        # A successful login forgives that username's failed attempts.
        from django.contrib.auth.signals import user_logged_in

        from accounts.limits import forgive_failed_logins

        user_logged_in.connect(forgive_failed_logins, dispatch_uid="forgive_failed_logins")
        post_migrate.connect(_search_index_in_place, sender=self)

        # A deleted attachment row (its conversation, message or user gone)
        # takes its stored file along once the deletion commits.
        from django.db.models.signals import post_delete

        from .files.store import delete_stored_file

        post_delete.connect(
            delete_stored_file, sender=self.get_model("Attachment"), dispatch_uid="chat.files"
        )


def _search_index_in_place(using, **kwargs):
    """SQLite loses the search triggers when a migration rebuilds a table."""
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    from .search import index as search_index

    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    applied = MigrationRecorder(connection).applied_migrations()
    if ("chat", search_index.MIGRATION) in applied:
        search_index.ensure(connection)

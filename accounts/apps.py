from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from .context_processors import on_login

        user_logged_in.connect(on_login, dispatch_uid="accounts_theme_on_login")

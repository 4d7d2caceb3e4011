from django.contrib.auth import views as auth_views
from django.urls import path

from . import views as accounts
from .limits import rate_limited

# Django's password-reset views at their usual names; asking for a reset mail
# is limited per client address (each POST may send a mail).
password_reset = rate_limited("accounts.password_reset", "PASSWORD_RESET_RATE_LIMIT", key="ip")(
    auth_views.PasswordResetView.as_view()
)

urlpatterns = [
    path("signup/", accounts.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_reset/", password_reset, name="password_reset"),
    path(
        "password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("settings/", accounts.user_settings, name="settings"),
]

"""Signing up (logging in and out are Django's own views) and a user's own settings."""

from django.contrib import messages as flash
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .context_processors import remember_theme
from .forms import SettingsForm, SignupForm
from .limits import rate_limited
from .models import UserSettings


@require_http_methods(["GET", "POST"])
@rate_limited("accounts.signup", "SIGNUP_RATE_LIMIT", key="ip")
def signup(request):
    if request.user.is_authenticated:
        return redirect("chat:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        response = redirect("chat:list")
        response.status_code = 303  # See Other, as every form post of the app
        return response
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def user_settings(request):
    """`/accounts/settings/`: default instructions and theme. A refused form
    (instructions too long, an unknown theme) answers 400 and changes nothing."""
    current = UserSettings.of(request.user)
    form = SettingsForm(request.POST or None, instance=current)
    if request.method == "POST":
        if form.is_valid():
            saved = form.save()
            remember_theme(request, saved.theme)
            flash.success(request, "Settings saved.")
            response = redirect("settings")
            response.status_code = 303
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/settings.html", {"form": form}, status=status)

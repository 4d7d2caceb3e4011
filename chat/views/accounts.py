"""Signing up (logging in and out are Django's own views)."""

from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from chatproject.limits import rate_limited

from ..forms import SignupForm
from .common import see_other


@require_http_methods(["GET", "POST"])
@rate_limited("accounts.signup", "SIGNUP_RATE_LIMIT", key="ip")
def signup(request):
    if request.user.is_authenticated:
        return redirect("chat:list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return see_other(reverse("chat:list"))
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)

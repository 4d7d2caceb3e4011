"""Signing up (logging in and out are Django's own views)."""

from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import SignupForm
from .limits import rate_limited


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

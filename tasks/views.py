from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from .models import AsyncTask


@login_required
def task_detail(request, pk):
    task = get_object_or_404(AsyncTask.objects.for_user(request.user), pk=pk)
    return JsonResponse({"task": task.as_frame()})

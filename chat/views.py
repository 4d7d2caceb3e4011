from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404

from .models import Conversation


@login_required
def conversation_list(request):
    return HttpResponse("chat")


@login_required
def conversation_detail(request, pk):
    conversation = get_object_or_404(Conversation.objects.for_user(request.user), pk=pk)
    return HttpResponse(conversation.title)

"""The middleware chain runs in one thread per request under ASGI
(chatproject/onethread.py): Django crosses between the event loop and a
thread a fixed, small number of times, not once per middleware method."""

import pytest
from asgiref import sync

pytestmark = pytest.mark.django_db


@pytest.mark.asyncio
async def test_a_request_crosses_into_threads_a_few_times_only(monkeypatch, settings):
    from django.test import AsyncClient

    crossings = []
    real = sync.SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        crossings.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted)
    response = await AsyncClient().get("/")
    assert response.status_code in (301, 302)
    # The chain once, CSRF's process_view once, the view once (and the
    # request_started / request_finished signals); twelve and more when
    # every middleware's process_request and process_response crossed.
    assert len(crossings) <= 6, crossings

    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "onethread" not in m]
    crossings.clear()
    await AsyncClient().get("/")
    assert len(crossings) > 8, crossings  # what the test guards against

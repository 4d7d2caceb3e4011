"""One thread per request: the last middleware, sync only, so that Django's
middleware chain runs in the request's thread from end to end.

Under ASGI, Django adapts each middleware to the mode of the one inside it.
With an async-capable middleware innermost, every `MiddlewareMixin`
middleware (sessions, CSRF, auth, messages…) runs its `process_request` and
`process_response` through `sync_to_async`: twelve hand-overs between the
event loop and a thread per request, each one waiting for the loop, which
also carries the websockets' frames. The views are sync, so that buys
nothing. This middleware, innermost and sync only, makes the whole chain
sync: Django crosses into the loop once for the chain and once for the view.
"""


class OneThreadMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

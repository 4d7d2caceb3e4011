"""The address `make run` serves, as the base of the callback URLs."""


def base_url_from_run_addr(addr: str) -> str:
    """The URL a server started on `addr` (runserver's `[host:]port`) is reached at.

    `make run` serves RUN_ADDR; without PUBLIC_BASE_URL the callback URLs
    follow it, so moving the port does not send n8n's callbacks elsewhere.
    A wildcard host (0.0.0.0, ::) is reached on the loopback address.
    """
    host, _, port = (addr or "").strip().rpartition(":")
    if not port.isdigit():
        return "http://127.0.0.1:8000"
    host = host.strip("[]")
    if host in ("", "0", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"

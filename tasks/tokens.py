"""Per-task callback tokens.

A token is an HMAC of the task id under the project's SECRET_KEY (with a salt
of its own), so it is worth nothing for any other task and needs no storage.
n8n keeps the dispatch body, token included, in its execution data: a leaked
token can only report on its own task.
"""

from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "tasks.callback-token.v1"


def make_token(task_id) -> str:
    return salted_hmac(SALT, f"async-task:{int(task_id)}", algorithm="sha256").hexdigest()


def check_token(task_id, token) -> bool:
    """Constant-time comparison of a presented token with the task's own."""
    if not token or not isinstance(token, str):
        return False
    return constant_time_compare(make_token(task_id), token)

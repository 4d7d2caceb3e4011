"""The dispatcher loop behind `tasks_worker` (built in the tasks issue)."""


def start_in_process_worker():
    """Run the worker loop in a daemon thread of the server process."""

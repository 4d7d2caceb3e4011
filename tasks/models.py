"""The generic async task: one row of `async_tasks` per piece of n8n work."""

from datetime import timedelta

from django.conf import settings
from django.db import connections, models
from django.db.models import Q, Value
from django.db.models.functions import Now
from django.db.models.sql import UpdateQuery
from django.urls import reverse
from django.utils import timezone


def _json_default():
    return Value({}, output_field=models.JSONField())


class TaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    TIMEOUT = "timeout", "Timed out"
    CANCELLED = "cancelled", "Cancelled"

    # The sets every caller asks (as Celery's states.py): nobody lists the
    # statuses again.
    @classmethod
    def unfinished(cls):
        """Still expected to change: waiting for dispatch, or running in n8n."""
        return (cls.PENDING, cls.PROCESSING)

    @classmethod
    def terminal(cls):
        """Final: no callback changes it any more (409)."""
        return (cls.COMPLETED, cls.FAILED, cls.TIMEOUT, cls.CANCELLED)

    @classmethod
    def ended_badly(cls):
        """Final without a result: the page shows why and offers a retry."""
        return (cls.FAILED, cls.TIMEOUT, cls.CANCELLED)


class TaskWords:
    """What people read about a task: every status message the task system
    writes and how a task reads on a page, named once (as TaskStatus names
    the statuses). Writers take their words from here and nowhere else; the
    technical reason of a failure stays in `error_details` and `last_error`,
    for the admin."""

    # Dispatch (tasks/outbound/dispatch.py): what is true of the attempt
    # that failed, and of the next one.
    UNREACHABLE = "The assistant's service could not be reached."
    ANSWERED_WITH_ERROR = "The assistant's service answered with an error."
    REFUSED = "The assistant's service did not accept the question."
    # Reconciliation (tasks/outbound/reconcile.py): n8n's API says it is still running.
    STILL_RUNNING = "The assistant's service says it is still working…"
    # Reconciliation: n8n's answer or its Result body breaks the input rules.
    RESULT_UNUSABLE = "The assistant's answer could not be used."
    # A `failed` callback without `error` (kept as error_details["message"]).
    FAILURE_WITHOUT_DETAILS = "The workflow reported a failure without details."
    # A workflow's failure (a callback's or reconciliation's): the workflow's
    # own words stay in error_details, for the admin (docs/PROTOCOL.md).
    WORKFLOW_FAILED = "The assistant's workflow failed."
    # The admin's "Mark failed" without a name.
    MARKED_FAILED = "Marked failed by an administrator."

    @staticmethod
    def retrying(answered, attempt, attempts) -> str:
        """A dispatch that failed and will be sent again: whether the service
        answered (with an error) or could not be reached, and which attempt
        comes next of how many the time allows."""
        what = "answered with an error" if answered else "could not be reached"
        return f"The assistant's service {what}; trying again ({attempt} of {attempts})…"

    @staticmethod
    def execution_ended(n8n_status) -> str:
        """A failed execution that left no error message."""
        return f"The assistant's run ended as {n8n_status}."

    @staticmethod
    def timed_out(seconds) -> str:
        return f"No answer within {seconds} seconds."

    @staticmethod
    def stopped_by(who) -> str:
        return f"Stopped by {who}."

    @staticmethod
    def marked_failed_by(who) -> str:
        return f"Marked failed by {who}."

    @staticmethod
    def in_the_admin(username) -> str:
        """Who, when a person acts through the admin (for the two above)."""
        return f"{username} in the admin"

    # How a task reads on a page (chat/replies/taskstatus.py): its label by status,
    # and the sentence that heads what went wrong with a task that ended
    # without a result.
    LABELS = {
        TaskStatus.PENDING: "Pending",
        TaskStatus.PROCESSING: "Processing",
        TaskStatus.COMPLETED: "Completed",
        TaskStatus.FAILED: "Failed",
        TaskStatus.TIMEOUT: "Timed out",
        TaskStatus.CANCELLED: "Stopped",
    }
    ENDED = {
        TaskStatus.FAILED: "The assistant could not reply.",
        TaskStatus.TIMEOUT: "The assistant did not answer in time.",
        TaskStatus.CANCELLED: "Stopped before the reply was finished.",
    }
    # While a task is unfinished the page says what is true, with the time
    # waited so far in place of `{elapsed}` (or after the words): not yet sent,
    # sent and not heard of since, or the workflow's step.
    SENDING = "Sending to the assistant ({elapsed})…"
    NO_ANSWER_YET = "No answer yet from the assistant ({elapsed})…"
    # The steps of a finished reply ("Details"): the step the app itself
    # records when the workflow accepts it, and the line that sums them up.
    SENT = "Sent to the assistant"
    TOTAL = "Total"
    # Steps the app records itself; a workflow's own steps are its ids made readable.
    OWN_STEPS = {"dispatched": SENT}

    @staticmethod
    def readable_step(step) -> str:
        """A workflow's step id as words: "searching_web" → "Searching web"."""
        words = " ".join((step or "").replace("_", " ").replace("-", " ").split())
        return words[:1].upper() + words[1:]

    @staticmethod
    def step_label(status, step="", message="") -> str:
        """One step of a task as people read it: an unfinished step is its
        `status_message` (`message`, when it is fit to show: the workflow's
        words, or a retry's), else a processing step is its step id made
        readable; any other is its status's label."""
        if status in TaskStatus.unfinished() and message:
            return message
        if status == TaskStatus.PROCESSING:
            if step in TaskWords.OWN_STEPS:
                return TaskWords.OWN_STEPS[step]
            if step:
                return TaskWords.readable_step(step)
        return TaskWords.LABELS.get(status, TaskWords.LABELS[TaskStatus.PENDING])

    @staticmethod
    def waiting(status, step="", message="") -> str:
        """What an unfinished task's status line says (with `{elapsed}`, or
        followed by the time waited)."""
        if message:
            return message
        if status == TaskStatus.PENDING:
            return TaskWords.SENDING
        if step and step not in TaskWords.OWN_STEPS:
            return TaskWords.readable_step(step)
        return TaskWords.NO_ANSWER_YET

    @staticmethod
    def label(status, step="") -> str:
        """The label of a task in `status` (at `step` when processing)."""
        return TaskWords.step_label(status, step)

    @staticmethod
    def seconds(value, precise=False) -> str:
        """A duration as the page shows it: "40 s", "2 min 5 s"; `precise`
        keeps a tenth under ten seconds ("4.2 s", for a reply's steps). The
        page's clock (static/chat/times.js) counts on in the same form."""
        if value < 60:
            return f"{value:.1f} s" if precise and value < 10 else f"{value:.0f} s"
        minutes, rest = divmod(round(value), 60)
        return f"{minutes} min {rest} s"


# Which status may follow which: forward only, `processing` may repeat.
ALLOWED_TRANSITIONS = {
    TaskStatus.PENDING: {TaskStatus.PROCESSING, *TaskStatus.terminal()},
    TaskStatus.PROCESSING: {TaskStatus.PROCESSING, *TaskStatus.terminal()},
    **{status: set() for status in TaskStatus.terminal()},
}
# The one way back, an operator's decision ("dispatch again" in the admin):
# a task that failed or timed out may be sent to its workflow once more.
REOPENABLE = {TaskStatus.FAILED, TaskStatus.TIMEOUT}


def statuses_before(new_status) -> list[str]:
    """The statuses a task may be in for `new_status` to follow."""
    return [old.value for old, nexts in ALLOWED_TRANSITIONS.items() if new_status in nexts]


class EventSource(models.TextChoices):
    """Who made a change of a task (kept with each event)."""

    DISPATCH = "dispatch", "Dispatch"
    CALLBACK = "callback", "Callback"
    WORKER = "worker", "Worker"
    USER = "user", "User"
    ADMIN = "admin", "Admin"


class AsyncTaskQuerySet(models.QuerySet):
    def update_returning(
        self, values, *, fields=None, extra=(), extra_params=(), compose=None, compiled=None
    ) -> list["AsyncTask"]:
        """UPDATE this queryset's rows with `values` and return them as written,
        in one statement (`UPDATE … RETURNING`, PostgreSQL and SQLite alike).

        The UPDATE is built by the ORM's own compiler (so `F()` and other
        expressions work as in `.update()`); the rows come back converted as
        the ORM converts a query's columns, with the mapping worked out once per
        database. `fields` names the columns to read back (all by default; the
        others are deferred), `extra` pairs of (attribute, SQL expression over
        the row) read back too, their placeholders filled by `extra_params`.
        `compose(update_sql, params, columns)` may wrap the UPDATE into a
        larger statement that returns `columns` of the changed rows (the door
        adds the change's event this way). `compiled` is the UPDATE's (sql,
        params) as the caller compiled it before: `values` and this queryset's
        filters are then not compiled again (`values` may be None). Only
        tasks/door.py calls it.
        """
        if compiled is None:
            query = self.query.chain(UpdateQuery)
            query.add_update_values(values)
            compiled = query.get_compiler(self.db).as_sql()
        sql, params = compiled
        columns, names, converters = _returning_shape(self.db, fields, tuple(extra))
        if compose is None:
            sql, params = f"{sql} RETURNING {columns}", [*params, *extra_params]
        else:
            assert not extra_params, "a composed statement takes no extra parameters"
            sql, params = compose(sql, list(params), columns)
        connection = connections[self.db]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        built = []
        for row in rows:
            values = list(row)
            for index, column, functions in converters:
                for function in functions:
                    values[index] = function(values[index], column, connection)
            task = self.model.from_db(
                self.db, names[: len(names) - len(extra)], values[: len(names) - len(extra)]
            )
            for (name, _sql), value in zip(extra, values[len(names) - len(extra) :], strict=True):
                setattr(task, name, value)
            built.append(task)
        return built

    def for_user(self, user):
        return self.filter(created_by=user)

    def unfinished(self):
        return self.filter(status__in=TaskStatus.unfinished())

    def dispatchable(self, now=None):
        """Pending tasks nobody holds a claim on, whose next attempt is due."""
        now = now or timezone.now()
        return self.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
            status=TaskStatus.PENDING,
        )


class AsyncTask(models.Model):
    task_type = models.CharField(max_length=64)
    workflow_id = models.CharField(max_length=255)
    input_data = models.JSONField(default=dict, db_default=_json_default())
    output_data = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=16,
        choices=TaskStatus.choices,
        default=TaskStatus.PENDING,
        db_default=TaskStatus.PENDING.value,
    )
    current_step = models.CharField(max_length=255, blank=True, default="", db_default="")
    status_message = models.TextField(blank=True, default="", db_default="")
    n8n_execution_id = models.CharField(max_length=255, blank=True, default="", db_default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        db_column="created_by",
        related_name="async_tasks",
    )
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processing_completed_at = models.DateTimeField(null=True, blank=True)
    error_details = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, db_default=_json_default(), blank=True)
    # Grows by one with every change; live frames carry it so a page can
    # ignore a frame that is older than what it shows.
    version = models.IntegerField(default=1, db_default=1)
    # Dispatch bookkeeping (added columns; the contract allows additions).
    attempts = models.IntegerField(default=0, db_default=0)
    last_error = models.TextField(blank=True, default="", db_default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now, db_default=Now())
    # Set when an operator dispatches a finished task again ("dispatch again"):
    # its timeout then counts from here instead of from created_at.
    restarted_at = models.DateTimeField(null=True, blank=True)
    # When the worker last asked n8n about this task (tasks/outbound/reconcile.py).
    reconciled_at = models.DateTimeField(null=True, blank=True)
    # The reply text streamed so far (n8n's streaming body, `delta` callbacks),
    # for pages that reload or connect to another server process mid-reply;
    # written by tasks.door.append_partial, cleared when the task completes.
    partial_text = models.TextField(blank=True, default="", db_default="")
    # The `sequence` of the last `processing` callback applied (docs/PROTOCOL.md):
    # one that carries a smaller or equal one is older and changes nothing.
    callback_sequence = models.BigIntegerField(null=True, blank=True)

    objects = AsyncTaskQuerySet.as_manager()

    class Meta:
        db_table = "async_tasks"
        ordering = ["-created_at", "-id"]
        verbose_name = "async task"
        indexes = [
            models.Index(fields=["status", "created_at"], name="async_tasks_status_created"),
            models.Index(fields=["created_by", "created_at"], name="async_tasks_owner_created"),
            models.Index(fields=["n8n_execution_id"], name="async_tasks_execution_id"),
            models.Index(fields=["task_type"], name="async_tasks_task_type"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=TaskStatus.values), name="async_tasks_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.task_type} #{self.pk} ({self.status})"

    def get_absolute_url(self):
        return reverse("tasks:detail", args=[self.pk])

    @property
    def is_terminal(self):
        return self.status in TaskStatus.terminal()

    @property
    def timeout_counts_from(self):
        return self.restarted_at or self.created_at

    @property
    def timeout_seconds(self) -> int:
        """Its type's timeout (TASK_TIMEOUT_SECONDS for an unknown type)."""
        from .registry import timeout_for

        return timeout_for(self.task_type)

    @property
    def deadline(self):
        """When it becomes `timeout` if still unfinished: the one deadline that
        dispatch retries, a stream's reading and the worker's expiry all use."""
        return self.timeout_counts_from + timedelta(seconds=self.timeout_seconds)

    @property
    def duration(self):
        if self.processing_completed_at and self.created_at:
            return self.processing_completed_at - self.created_at
        return None

    def as_frame(self):
        """The `task` object of a `task.status` frame (docs/PROTOCOL.md, "Frames")."""

        def iso(value):
            return value.isoformat() if value else None

        return {
            "id": self.pk,
            "task_type": self.task_type,
            "status": self.status,
            "current_step": self.current_step,
            "status_message": self.status_message,
            "version": self.version,
            "created_at": iso(self.created_at),
            "processing_started_at": iso(self.processing_started_at),
            "processing_completed_at": iso(self.processing_completed_at),
        }


class AsyncTaskEvent(models.Model):
    """One change of a task, written by tasks.door in the transaction of the change.

    Progress in the same step is coalesced into that step's row, and at most
    TASK_EVENTS_MAX_PER_TASK rows are kept per task (the final one always is),
    so a workflow that reports every 100 ms cannot grow the table without limit.
    """

    task = models.ForeignKey(AsyncTask, on_delete=models.CASCADE, related_name="events")
    version = models.IntegerField()
    status = models.CharField(max_length=16, choices=TaskStatus.choices)
    current_step = models.CharField(max_length=255, blank=True, default="", db_default="")
    status_message = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now, db_default=Now())
    source = models.CharField(max_length=16, choices=EventSource.choices)

    class Meta:
        db_table = "async_task_events"
        ordering = ["task_id", "version", "id"]
        indexes = [models.Index(fields=["task", "version"], name="async_task_events_task")]

    def __str__(self):
        return f"task {self.task_id} v{self.version}: {self.status} ({self.source})"


class WorkerHeartbeat(models.Model):
    """The last pass of each running `tasks_worker` (or in-process worker);
    /healthz fails when the newest is older than TASKS_WORKER_HEARTBEAT_MAX_AGE."""

    name = models.CharField(max_length=255, primary_key=True)  # host:pid
    beat_at = models.DateTimeField()

    class Meta:
        db_table = "tasks_worker_heartbeats"

    def __str__(self):
        return f"{self.name} at {self.beat_at:%H:%M:%S}"


_returning_shapes: dict[tuple, tuple] = {}


def _returning_shape(alias, fields=None, extra=()):
    """(the column list to return, the attribute names, the converters by index)
    of `async_tasks` on one database, worked out once per shape: `QuerySet.raw()`
    would work them out anew on every call of the app's hottest statement."""
    key = (alias, tuple(fields) if fields else None, extra)
    shape = _returning_shapes.get(key)
    if shape is None:
        connection = connections[alias]
        concrete = AsyncTask._meta.concrete_fields
        if fields:
            wanted = {"id", *fields}
            concrete = [field for field in concrete if field.attname in wanted]
        quoted = [connection.ops.quote_name(field.column) for field in concrete]
        columns = ", ".join(
            quoted + [f"{sql} AS {connection.ops.quote_name(name)}" for name, sql in extra]
        )
        converters = []
        for index, field in enumerate(concrete):
            column = field.get_col(AsyncTask._meta.db_table)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if found:
                converters.append((index, column, found))
        names = [field.attname for field in concrete] + [name for name, _sql in extra]
        shape = _returning_shapes[key] = (columns, names, converters)
    return shape

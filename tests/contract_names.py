"""Key sets of the protocol's JSON (docs/PROTOCOL.md), named once for every test."""

TASK_FRAME_KEYS = {
    "id",
    "task_type",
    "status",
    "current_step",
    "status_message",
    "version",
    "created_at",
    "processing_started_at",
    "processing_completed_at",
}
MESSAGE_FRAME_KEYS = {
    "id",
    "conversation_id",
    "role",
    "content",
    "thinking",
    "created_at",
    "async_task_id",
}
DISPATCH_KEYS = {
    "task_id",
    "task_type",
    "workflow_id",
    "input",
    "callback_url",
    "callback_token",
    "timeout_seconds",
}

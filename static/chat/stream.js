// Replies that grow while the workflow writes them (message.delta frames).
//
// Each unfinished reply with text gets a provisional item at the end of the
// list, plain text, marked aria-busy (screen readers hear the finished reply
// from the live region when message.created arrives, not every piece). The
// text is kept as code points, since frame offsets count code points. When
// the reply's message arrives (message.created with its async_task_id) the
// server-rendered message replaces the provisional item.

import { state, UNFINISHED } from "./state.js";
import { nearBottom, scrollToNewest } from "./scroll.js";

// A task that ended without a message (failed, timed out) loses its
// provisional text after this long; a completed or stopped one waits for its
// message frame.
const ORPHAN_MS = 4000;

let onGap = () => {};

export function onStreamGap(callback) {
  onGap = callback;
}

function replied(taskId) {
  return Boolean(
    state.list && state.list.querySelector(`li[data-message-id][data-task-id="${taskId}"]`),
  );
}

function item(taskId, create) {
  let element = document.getElementById(`stream-${taskId}`);
  if (element || !create || !state.list) return element;
  element = document.createElement("li");
  element.id = `stream-${taskId}`;
  element.className = "message message--assistant message--streaming";
  element.dataset.streamTaskId = String(taskId);
  element.setAttribute("aria-busy", "true");
  const meta = document.createElement("div");
  meta.className = "message__meta";
  const author = document.createElement("span");
  author.className = "message__author";
  author.textContent = "Assistant";
  meta.append(author);
  const body = document.createElement("div");
  body.className = "message__body message__body--plain message__body--streaming";
  element.append(meta, body);
  state.list.append(element);
  const empty = state.root && state.root.querySelector(".messages__empty");
  if (empty) empty.remove();
  return element;
}

const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";

// What the growing reply shows: like the server's split (chat/tasktypes.py
// split_thinking), a leading <think>…</think> is the model's reasoning, which
// the final message puts under "Thinking"; while it is being written the
// reply reads "Thinking…", then only what follows it.
export function visibleText(text) {
  const start = text.trimStart();
  if (!start) return { text: "", thinking: false };
  if (!start.startsWith(THINK_OPEN)) {
    // "<thi" may still become "<think>": show nothing until it is decided.
    const undecided = THINK_OPEN.startsWith(start);
    return { text: undecided ? "" : text, thinking: undecided };
  }
  const close = start.indexOf(THINK_CLOSE, THINK_OPEN.length);
  if (close === -1) return { text: "", thinking: true };
  return { text: start.slice(close + THINK_CLOSE.length).trimStart(), thinking: false };
}

// A message.delta frame: text continues the task's partial reply at offset.
export function applyDelta(frame) {
  const taskId = String(frame.task_id);
  if (String(frame.conversation_id) !== String(state.conversationId)) return;
  const known = state.tasks.get(taskId);
  if (known && !UNFINISHED.includes(known.status)) return; // ended: its message wins
  if (replied(taskId)) return;
  const stream = state.streams.get(taskId) || { points: [] };
  const incoming = Array.from(frame.text || "");
  const offset = Number(frame.offset) || 0;
  if (offset > stream.points.length) {
    onGap(); // a piece was missed: sync answers the whole text so far
    return;
  }
  if (offset + incoming.length <= stream.points.length) return; // nothing new
  stream.points = stream.points.slice(0, offset).concat(incoming);
  state.streams.set(taskId, stream);
  const atBottom = nearBottom();
  const element = item(taskId, true);
  const body = element.querySelector(".message__body");
  const visible = visibleText(stream.points.join(""));
  body.textContent = visible.thinking ? "Thinking…" : visible.text;
  body.classList.toggle("message__body--thinking", visible.thinking);
  // Follow the growing text unless the reader scrolled up to read.
  if (atBottom) scrollToNewest();
}

// The reply's message arrived (or the task ended without one): drop the stream.
export function endStream(taskId) {
  const id = String(taskId);
  state.streams.delete(id);
  const element = item(id, false);
  if (element) element.remove();
  return Boolean(element);
}

// A task.status frame: a stream whose task ended badly goes after a moment;
// a completed or stopped one is replaced by its message frame.
export function taskChanged(task) {
  const id = String(task.id);
  if (UNFINISHED.includes(task.status) || !item(id, false)) return;
  setTimeout(() => {
    if (!replied(id)) endStream(id);
  }, ORPHAN_MS);
}

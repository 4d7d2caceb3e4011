// Replies that grow while the workflow writes them (message.delta frames).
//
// Each unfinished reply with text gets a provisional item at the end of the
// list, plain text, marked aria-busy (screen readers hear the finished reply
// from the live region when message.created arrives, not every piece). The
// text is kept as code points, since frame offsets count code points; which
// part of it shows is the frames' to say. When the reply's message arrives
// (message.created with its async_task_id) the server-rendered message
// replaces the provisional item.

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

// The provisional item comes from the page's <template id="stream-template">,
// rendered by the server from the same template as every message.
function item(taskId, create) {
  let element = document.getElementById(`stream-${taskId}`);
  const shell = document.getElementById("stream-template");
  if (element || !create || !state.list || !shell) return element;
  element = shell.content.firstElementChild.cloneNode(true);
  element.id = `stream-${taskId}`;
  element.dataset.streamTaskId = String(taskId);
  state.list.append(element);
  const empty = state.root && state.root.querySelector(".messages__empty");
  if (empty) empty.remove();
  return element;
}

// A message.delta frame: text continues the task's partial reply at offset.
// What to show of the text so far is the server's to say (its thinking rule,
// chat/thinking.py): "thinking" (show the body's data-thinking words), else
// the text from code point visible_offset on. Both describe the text up to
// the frame's end, which is the end of what the page then has.
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
  if (!element) return;
  const body = element.querySelector(".message__body");
  const thinking = frame.thinking === true;
  body.textContent = thinking
    ? body.dataset.thinking
    : stream.points.slice(Number(frame.visible_offset) || 0).join("");
  body.classList.toggle("message__body--thinking", thinking);
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

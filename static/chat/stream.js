// Replies that grow while the workflow writes them (message.delta frames).
//
// Each unfinished reply with text gets a provisional item at the end of the
// list, marked aria-busy (screen readers hear the finished reply from the
// live region when message.created arrives, not every piece). The text is
// kept as code points, since frame offsets count code points. What the item
// shows is the server's to say: a frame with `html` carries the reply so far
// formatted by the server (the same renderer as the final message), which the
// page puts in as it is, so the final version replaces it without a jump;
// without formatting (the server's switch off) the visible text shows plain.
// When the reply's message arrives (message.created with its async_task_id)
// the server-rendered message replaces the provisional item. A reply whose
// task failed keeps its text, marked as interrupted.

import { state, UNFINISHED } from "./state.js";
import { nearBottom, scrollToNewest } from "./scroll.js";
import { fragmentContent } from "./dom.js";

// A completed or stopped task waits this long for its message frame before
// its provisional item goes (the next sync brings the message anyway).
const ORPHAN_MS = 4000;
const ENDED_BADLY = ["failed", "timeout"];

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

// Put the server's HTML of the reply so far in the body, as it is.
function showHtml(body, html) {
  body.replaceChildren(fragmentContent(html));
}

// A message.delta frame: text continues the task's partial reply at offset;
// `html` (with the length it covers, `html_offset`) is what to show of it.
// Otherwise what to show is the frame's to say (the server's thinking rule,
// chat/thinking.py): "thinking" (show the body's data-thinking words), else
// the text from code point visible_offset on.
export function applyDelta(frame) {
  const taskId = String(frame.task_id);
  if (String(frame.conversation_id) !== String(state.conversationId)) return;
  const known = state.tasks.get(taskId);
  if (known && !UNFINISHED.includes(known.status)) return; // ended: its message wins
  if (replied(taskId)) return;
  const stream = state.streams.get(taskId) || { points: [], htmlOffset: -1 };
  state.streams.set(taskId, stream);
  const incoming = Array.from(frame.text || "");
  const offset = Number(frame.offset) || 0;
  const hasHtml = typeof frame.html === "string";
  if (offset > stream.points.length) {
    onGap(); // a piece was missed: sync answers the whole text so far
    if (!hasHtml) return;
  } else if (offset + incoming.length > stream.points.length) {
    stream.points = stream.points.slice(0, offset).concat(incoming);
  } else if (!hasHtml) {
    return; // nothing new
  }
  const atBottom = nearBottom();
  const element = item(taskId, true);
  if (!element) return;
  const body = element.querySelector(".message__body");
  const thinking = frame.thinking === true;
  const htmlOffset = Number(frame.html_offset) || 0;
  if (hasHtml) {
    if (htmlOffset < stream.htmlOffset) return; // an older rendering
    stream.htmlOffset = htmlOffset;
    showHtml(body, frame.html);
  } else if (thinking) {
    body.textContent = body.dataset.thinking;
  } else if (!body.dataset.formatted) {
    body.textContent = stream.points.slice(Number(frame.visible_offset) || 0).join("");
  } else if (body.classList.contains("message__body--thinking")) {
    body.textContent = ""; // thought over: the formatted reply follows
  }
  if (!hasHtml) body.classList.toggle("message__body--thinking", thinking);
  else body.classList.remove("message__body--thinking");
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

// A task.status frame. A reply whose task failed or timed out keeps what
// was written, marked as interrupted (the status line under the question
// says what happened and offers Retry); a completed or stopped one is
// replaced by its message frame.
export function taskChanged(task) {
  const id = String(task.id);
  const element = item(id, false);
  if (UNFINISHED.includes(task.status) || !element) return;
  if (ENDED_BADLY.includes(task.status)) {
    state.streams.delete(id);
    element.removeAttribute("aria-busy");
    element.classList.remove("message--streaming");
    element.classList.add("message--interrupted");
    element.removeAttribute("id");
    const note = element.querySelector(".message__interrupted");
    if (note) note.hidden = false;
    return;
  }
  setTimeout(() => {
    if (!replied(id)) endStream(id);
  }, ORPHAN_MS);
}

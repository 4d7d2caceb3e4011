// Messages and their task status lines.
//
// - message.created: the server's own fragment, inserted once (keyed by id);
//   one too large for a frame (too_large) is fetched over HTTP first;
// - task.status: the server's status fragment (frame "html") replaces the
//   status line of a user message, unless its version is not newer than the
//   one shown. The words always come from the server, so they read the same
//   live and after a reload.

import { state, UNFINISHED } from "./state.js";
import { fragment, fillCsrf, announce } from "./dom.js";
import { enhance } from "./enhance.js";
import { updateComposer } from "./composer.js";
import { followNewestMessage } from "./sidebar.js";
import { endStream, taskChanged } from "./stream.js";
import { nearBottom, scroller, scrollToNewest } from "./scroll.js";
import { placeOf, countSibling, followLeaf } from "./branches.js";

const ANNOUNCE_MAX_CHARS = 300;

// --- scrolling ----------------------------------------------------------------------

export { nearBottom, scrollToNewest };

// A new reply: to the bottom when it fits, otherwise so that its start is in
// view (a long reply is read from its heading, not from its last line).
function scrollToReply(element) {
  const box = scroller();
  const bottom = box.scrollHeight - box.clientHeight;
  const margin = parseFloat(getComputedStyle(element).scrollMarginTop) || 0;
  const start = element.getBoundingClientRect().top + box.scrollTop - margin;
  box.scrollTop = Math.min(bottom, start);
}

export function newestShownId() {
  let newest = state.lastMessageId;
  if (state.list) {
    state.list.querySelectorAll("li[data-message-id]").forEach((item) => {
      newest = Math.max(newest, parseInt(item.dataset.messageId, 10) || 0);
    });
  }
  return newest;
}

// --- status lines -----------------------------------------------------------------------

// A status element from the page or a fragment: bring it to the newest known state.
export function reconcile(element) {
  const id = element.dataset.taskId;
  const shown = {
    id: Number(id),
    status: element.dataset.status,
    version: parseInt(element.dataset.version, 10) || 0,
  };
  const known = state.tasks.get(id);
  if (!known || shown.version > known.version) {
    state.tasks.set(id, Object.assign({}, known, shown));
    return;
  }
  if (known.version > shown.version) {
    if (known.status === "completed" || known.html === "") element.remove();
    else if (known.html) replaceStatus(element, known.html);
  }
}

function replaceStatus(element, html) {
  const incoming = fragment(html);
  if (!incoming) return element;
  fillCsrf(incoming);
  element.replaceWith(incoming);
  return incoming;
}

// The words of a status line that ended badly, for screen readers.
function errorWords(element) {
  const error = element && element.querySelector(".task-status__error");
  return error ? error.textContent.trim() : "";
}

// A task.status frame (html from the server) or a send's answer (no html).
// An empty html means the task needs no status line (a stopped reply kept its text).
export function applyTask(task, html) {
  const id = String(task.id);
  const known = state.tasks.get(id);
  const words = html !== undefined;
  // Stale: overtaken by a newer frame (a frame of the same version still brings
  // its words after a send's or a Stop's answer, which has none).
  if (known && (task.version < known.version || (task.version === known.version && (!words || known.html !== undefined)))) return;
  state.tasks.set(id, words ? Object.assign({}, task, { html }) : task);
  taskChanged(task);
  const element = document.getElementById(`task-${id}`);
  if (element) {
    const atBottom = nearBottom();
    if (task.status === "completed" || html === "") {
      element.remove();
    } else if (html) {
      const shown = replaceStatus(element, html);
      if (!UNFINISHED.includes(task.status)) announce(errorWords(shown));
    } else {
      element.dataset.status = task.status;
      element.dataset.version = String(task.version);
    }
    if (atBottom) scrollToNewest();
  }
  updateComposer();
}

// --- messages ------------------------------------------------------------------------

function announceReply(element) {
  const body = element.querySelector(".message__body");
  if (!body) return;
  let text = body.textContent.replace(/\s+/g, " ").trim();
  if (text.length > ANNOUNCE_MAX_CHARS) text = `${text.slice(0, ANNOUNCE_MAX_CHARS - 1)}…`;
  announce(`The assistant replied: ${text}`);
}

export function insertMessage(html, message, force, switches) {
  if (!state.list) return;
  const id = String(message.id);
  const incoming = fragment(html);
  if (!incoming) return;
  fillCsrf(incoming);
  const existing = document.getElementById(`message-${id}`);
  const atBottom = nearBottom();
  // The reply's own message replaces the text streamed so far.
  const streamed =
    message.role === "assistant" && message.async_task_id && endStream(message.async_task_id);
  let added = false;
  if (existing) {
    // Already shown. A retry links the message to a new task: take the new status line.
    const newStatus = incoming.querySelector(".task-status");
    const oldStatus = existing.querySelector(".task-status");
    if (newStatus && (!oldStatus || oldStatus.dataset.taskId !== newStatus.dataset.taskId)) {
      const newer = state.tasks.get(newStatus.dataset.taskId);
      if (!(newer && newer.status === "completed")) {
        if (oldStatus) oldStatus.replaceWith(newStatus);
        else existing.append(newStatus);
        reconcile(newStatus);
      }
    }
  } else if (placeOf(incoming) !== "append") {
    // On another branch: the shown thread stays; a sibling's switch counts it.
    if (placeOf(incoming) === "sibling") countSibling(incoming, message, switches);
    state.lastMessageId = Math.max(state.lastMessageId, message.id);
    return;
  } else {
    let before = null;
    for (const item of state.list.querySelectorAll("li[data-message-id]")) {
      if ((parseInt(item.dataset.messageId, 10) || 0) > message.id) {
        before = item;
        break;
      }
    }
    state.list.insertBefore(incoming, before);
    incoming.querySelectorAll(".task-status").forEach(reconcile);
    const empty = state.root.querySelector(".messages__empty");
    if (empty) empty.remove();
    if (message.id > state.lastMessageId) {
      followNewestMessage(message, incoming);
      added = true;
    }
    followLeaf();
  }
  state.lastMessageId = Math.max(state.lastMessageId, message.id);
  if (force) scrollToNewest();
  else if (added && atBottom && message.role === "assistant" && !streamed) scrollToReply(incoming);
  else if (atBottom) scrollToNewest();
  if (added && message.role === "assistant") announceReply(incoming);
  updateComposer();
}

// A message.created frame too large to carry its fragment (too_large): the
// page fetches the fragment from the server and inserts it like any message.
// A failed fetch leaves it out; the next sync names it again.
const fetching = new Set();

export async function insertTooLarge(message, switches) {
  if (!state.list) return;
  const id = String(message.id);
  if (fetching.has(id) || document.getElementById(`message-${id}`)) return;
  fetching.add(id);
  try {
    const response = await fetch(`${state.root.dataset.pageUrl}messages/${encodeURIComponent(id)}/`, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`status ${response.status}`);
    insertMessage(await response.text(), message, false, switches);
  } catch (error) {
    console.warn("chat: message", id, "could not be fetched:", error);
  } finally {
    fetching.delete(id);
  }
}

export function applySent(body) {
  if (body.task) applyTask(body.task);
  if (body.html && body.message) insertMessage(body.html, body.message, true);
}

// --- earlier messages, loaded in place ------------------------------------------------------

// "Load earlier messages" fetches the page the link names (the no-JS fallback)
// and puts its messages above, keeping what the reader looks at where it is.
async function loadEarlier(link) {
  link.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(link.href, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const items = Array.from(page.querySelectorAll("#messages > li[data-message-id]")).filter(
      (item) => !document.getElementById(item.id),
    );
    const box = scroller();
    const fromBottom = box.scrollHeight - box.scrollTop;
    const block = document.createDocumentFragment();
    items.forEach((item) => block.append(document.importNode(item, true)));
    enhance(block);
    state.list.prepend(block);
    items.forEach((item) => {
      const added = document.getElementById(item.id);
      if (added) added.querySelectorAll(".task-status").forEach(reconcile);
    });
    fillCsrf(state.list);
    const next = page.querySelector("a[data-load-earlier]");
    if (next) {
      link.setAttribute("href", next.getAttribute("href"));
      link.removeAttribute("aria-busy");
    } else {
      link.closest(".history-link").remove();
    }
    box.scrollTop = box.scrollHeight - fromBottom;
    announce(`${items.length} earlier message${items.length === 1 ? "" : "s"} loaded.`);
  } catch (error) {
    // The plain link still works: follow it.
    window.location.href = link.href;
  }
}

export function installLoadEarlier() {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-load-earlier]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    if (link.getAttribute("aria-busy") === "true") return;
    loadEarlier(link);
  });
}

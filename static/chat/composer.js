// The composer: sends with fetch (the plain form works without JavaScript),
// grows with its text, counts characters near the limit, keeps a draft per
// conversation. While a reply is unfinished the box stays editable (draft the
// next message) and the Send button becomes Stop; Esc stops too.
//
// Keys: on a keyboard Enter sends and Shift+Enter adds a line; on a touch
// screen (pointer: coarse) Return adds a line and the button sends.

import { state, busy, UNFINISHED } from "./state.js";
import { csrfToken } from "./dom.js";
import { clearDraft, draftKeyOf, rememberSent, restoreDraft, saveDraft } from "./drafts.js";
import { clearFiles, hasFiles, initFiles, sendForm } from "./files.js";

const WAITING_TEXT = "The assistant is replying… Stop (or Esc) ends the reply.";
const COUNTER_FROM = 0.9; // show the counter past this share of the limit

let form = null;
let input = null;
let sendButton = null;
let notice = null;
let counter = null;
let maxLength = 0;
let draftKey = "";

function setNotice(text, isError) {
  if (!notice) return;
  notice.textContent = text || "";
  notice.classList.toggle("composer__notice--error", Boolean(isError && text));
}

export function updateComposer() {
  if (!form || !input || !sendButton || form.dataset.mode !== "fetch") return;
  const waiting = busy();
  input.disabled = state.sending;
  sendButton.disabled = state.sending || state.stopping || (waiting && !cancelUrl());
  sendButton.textContent = waiting ? "Stop" : "Send";
  sendButton.classList.toggle("composer__send--stop", waiting);
  if (waiting) {
    form.dataset.busy = "1";
    if (!notice.classList.contains("composer__notice--error")) setNotice(WAITING_TEXT);
  } else {
    delete form.dataset.busy;
    if (notice.textContent === WAITING_TEXT) setNotice("");
    if (state.refocus && !state.sending) {
      state.refocus = false;
      input.focus();
    }
  }
}

// --- Stop -----------------------------------------------------------------------------

// The unfinished reply's cancel URL, from its status line (the server's URL).
function cancelUrl() {
  for (const [id, task] of state.tasks) {
    if (!UNFINISHED.includes(task.status)) continue;
    const element = document.getElementById(`task-${id}`);
    if (element && element.dataset.cancelUrl) return element.dataset.cancelUrl;
  }
  const any = document.querySelector(".task-status[data-cancel-url]");
  return any ? any.dataset.cancelUrl : "";
}

let onStopped = () => {};

async function stopReply() {
  const url = cancelUrl();
  if (!url || state.stopping) return;
  state.stopping = true;
  updateComposer();
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => ({}));
    // 409: it had finished meanwhile; its frames say how.
    if (response.ok && body.task) onStopped(body.task);
    else if (!response.ok && response.status !== 409) {
      setNotice(body.error || `Not stopped (${response.status}).`, true);
    }
  } catch (error) {
    setNotice("Not stopped: the server cannot be reached.", true);
  } finally {
    state.stopping = false;
    updateComposer();
  }
}

// --- size, counter, draft ----------------------------------------------------------------

// Taller with each line up to the CSS max-height, then it scrolls.
function grow() {
  input.style.height = "auto";
  const limit = parseFloat(getComputedStyle(input).maxHeight) || Infinity;
  input.style.height = `${Math.min(input.scrollHeight + 2, limit)}px`;
}

// Characters as the server counts them: code points, without surrounding space.
function length(text) {
  return Array.from(text.trim()).length;
}

function count() {
  if (!counter || !maxLength) return;
  const used = length(input.value);
  const near = used >= Math.floor(maxLength * COUNTER_FROM);
  counter.hidden = !near;
  const over = used - maxLength;
  counter.classList.toggle("composer__counter--over", over > 0);
  counter.textContent = near
    ? over > 0
      ? `${used.toLocaleString()} / ${maxLength.toLocaleString()}: ${over.toLocaleString()} too many`
      : `${used.toLocaleString()} / ${maxLength.toLocaleString()}`
    : "";
}

function refresh() {
  grow();
  count();
}

// --- sending --------------------------------------------------------------------------------

function touchScreen() {
  return window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
}

async function sendWithFetch(event, onSent) {
  event.preventDefault();
  if (state.sending) return;
  if (busy()) {
    stopReply(); // the button reads Stop while a reply is unfinished
    return;
  }
  if (!input.value.trim() && !hasFiles()) {
    setNotice("Write a message before sending.", true);
    return;
  }
  // Read before anything is disabled (disabled fields are not sent).
  const data = new FormData(form);
  state.sending = true;
  state.refocus = true;
  setNotice("Sending…");
  updateComposer();
  try {
    const result = await sendForm(form, data);
    if (result.ok) {
      input.value = "";
      clearFiles();
      clearDraft(draftKey);
      refresh();
      setNotice("");
      onSent(result.body);
    } else {
      setNotice(result.body.error || `Not sent (${result.status}).`, true);
    }
  } catch (error) {
    setNotice("Not sent: the server cannot be reached. Your message is still here.", true);
  } finally {
    state.sending = false;
    updateComposer();
    input.focus();
  }
}

// A plain form post (a new conversation): only an empty text is stopped here;
// the draft stays until the conversation's page shows the message.
function sendPlain(event) {
  if (!input.value.trim() && !hasFiles()) {
    event.preventDefault();
    setNotice("Write a message before sending.", true);
    return;
  }
  saveDraft(draftKey, input.value);
  rememberSent(draftKey, input.value);
}

export function initComposer({ onSent, onStop } = {}) {
  if (onStop) onStopped = onStop;
  form = document.getElementById("composer");
  input = document.getElementById("composer-input");
  sendButton = document.getElementById("composer-send");
  notice = document.getElementById("composer-notice");
  counter = document.getElementById("composer-counter");
  if (!form || !input || !sendButton || !notice) return;
  maxLength = parseInt(input.dataset.maxLength, 10) || 0;
  draftKey = draftKeyOf(input);

  restoreDraft(draftKey, input);
  refresh();
  initFiles({ notice: setNotice });

  form.addEventListener("submit", (event) => {
    if (form.dataset.mode === "fetch") sendWithFetch(event, onSent || (() => {}));
    else sendPlain(event);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.altKey) return;
    if (event.ctrlKey || event.metaKey || event.isComposing) return;
    if (touchScreen()) return; // Return adds a line; the button sends
    event.preventDefault();
    // While a reply is unfinished Enter keeps the draft: only Stop or Esc stop.
    if (form.dataset.mode === "fetch" && busy()) return;
    if (!sendButton.disabled) form.requestSubmit(sendButton);
  });

  // Esc stops the reply from the composer or the page itself, never from a
  // menu, the search box or another field (there it closes or clears that).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing || form.dataset.mode !== "fetch") return;
    if (event.defaultPrevented) return;
    const from = event.target;
    if (from !== input && from !== document.body && from !== document.documentElement) return;
    if (!busy()) return;
    event.preventDefault();
    stopReply();
  });

  input.addEventListener("input", () => {
    if (notice.classList.contains("composer__notice--error")) setNotice("");
    refresh();
    saveDraft(draftKey, input.value);
    updateComposer();
  });

  updateComposer();
  // Ready to type on arrival (after a new conversation's first message too),
  // unless the address names a message to read or the screen is a touch
  // screen (focus would open its keyboard over the page).
  if (form.dataset.mode === "fetch" && !location.hash && !touchScreen() && !input.disabled) {
    if (document.activeElement === document.body || !document.activeElement) {
      input.focus({ preventScroll: true });
    }
  }
}

export { setNotice };

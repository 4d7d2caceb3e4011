// The conversation page (and the new-conversation page's composer), as native
// ES modules with no build step. Each module is small and they share one state
// object (state.js):
//   socket.js    websocket, sync on every (re)connect, backoff, heartbeat
//   messages.js  message fragments, task status lines, scrolling, earlier messages
//   composer.js  sending, Stop (and Esc), growing box, counter, drafts, keys
//   stream.js    replies that grow while they are written (message.delta)
//   sidebar.js   the open conversation's entry and title
//   menu.js      the Manage menu: Esc and a click outside close it
//   drafts.js    the composer's drafts, kept until the message is shown
// page.js (every page) shows times in the reader's zone and the copy buttons.

import { state } from "./state.js";
import { fillCsrf, post } from "./dom.js";
import { initComposer, setNotice, updateComposer } from "./composer.js";
import { settleSentDraft } from "./drafts.js";
import { installMenus } from "./menu.js";
import {
  applySent,
  applyTask,
  installLoadEarlier,
  reconcile,
  scrollToNewest,
} from "./messages.js";
import { showTitle } from "./sidebar.js";
import { startSocket } from "./socket.js";
import { installBranches } from "./branches.js";
import { installAssistantPickers } from "./assistants.js";

function onSent(body) {
  if (body.conversation) showTitle(body.conversation.title);
  applySent(body);
}

// Retry buttons (in the server's status fragments) post with fetch too.
function installRetry(root) {
  root.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.task-retry");
    if (!form) return;
    event.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const result = await post(form, data);
      if (result.ok) {
        applySent(result.body);
      } else {
        setNotice(result.body.error || `Retry refused (${result.status}).`, true);
        if (button) button.disabled = false;
      }
    } catch (error) {
      setNotice("Retry failed: the server cannot be reached.", true);
      if (button) button.disabled = false;
    }
  });
}

// Exports show times in the reader's zone: the links say which (?tz=).
function exportInReaderZone(root) {
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  if (!zone) return;
  root.querySelectorAll("a[data-export]").forEach((link) => {
    const url = new URL(link.href, location.href);
    url.searchParams.set("tz", zone);
    link.href = url.pathname + url.search;
  });
}

function start() {
  installAssistantPickers();
  const root = document.getElementById("conversation");
  if (!root) {
    initComposer(); // the new-conversation page: a plain form post
    return;
  }
  if (!("WebSocket" in window) || !window.fetch) return;
  state.root = root;
  state.list = document.getElementById("messages");
  state.conversationId = root.dataset.conversationId;
  state.lastMessageId = parseInt(root.dataset.lastMessageId || "0", 10) || 0;
  const composer = document.getElementById("composer");
  state.serverBusy = composer ? composer.dataset.busy === "1" : false;
  if (composer) composer.dataset.mode = "fetch";

  root.querySelectorAll(".task-status[data-task-id]").forEach(reconcile);
  settleSentDraft(state.list);
  exportInReaderZone(root);
  installMenus();
  fillCsrf(root);
  initComposer({ onSent, onStop: (task) => applyTask(task) });
  installRetry(root);
  installBranches({
    notify: (text) => setNotice(text, true),
    swapped: (list) => {
      list.querySelectorAll(".task-status[data-task-id]").forEach(reconcile);
      updateComposer();
    },
  });
  installLoadEarlier();
  // Open at the newest message, unless the address names a message or an older page.
  if (!location.hash && !/[?&]before=/.test(location.search)) scrollToNewest();
  updateComposer();
  startSocket();
}

start();

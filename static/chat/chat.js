// Live updates of /chat/{id}/ (plain JS, no build step).
//
// The server-rendered page stays the truth the first time; after that this
// script applies the websocket frames of /ws/chat/{id}/ (see README, "Live
// updates and deploying"):
// - message.created: the server's own fragment, inserted once (keyed by id);
// - task.status: the status line of a user message, ignored unless its
//   version is newer than the one shown.
// On every (re)connect it sends `sync` with the newest message id shown and
// the tasks it still shows as unfinished, so nothing missed while offline is
// lost and nothing is shown twice. Messages are sent with fetch (the plain
// form keeps working without JavaScript).
(function () {
  "use strict";

  const root = document.getElementById("conversation");
  if (!root || !("WebSocket" in window) || !window.fetch) return;

  const conversationId = root.dataset.conversationId;
  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const sendButton = document.getElementById("composer-send");
  const notice = document.getElementById("composer-notice");
  const connectionStatus = document.getElementById("connection-status");

  const UNFINISHED = ["pending", "processing"];
  const WAITING_TEXT = "Waiting for the assistant's reply…";
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const HEARTBEAT_MS = 25000;
  const HEARTBEAT_TIMEOUT_MS = 10000;
  const NEAR_BOTTOM_PX = 120;

  // Newest state known per task id: {id, status, version, ...}.
  const tasks = new Map();
  let lastMessageId = parseInt(root.dataset.lastMessageId || "0", 10) || 0;
  let socket = null;
  let attempts = 0;
  let reconnectTimer = null;
  let heartbeatTimer = null;
  let pongTimer = null;
  let syncing = false;
  let sending = false;
  let gone = false; // the conversation was deleted: stop reconnecting
  // The server said "busy" when it rendered the page; trusted until a sync says otherwise.
  let serverBusy = composer ? composer.dataset.busy === "1" : false;
  let refocus = false;

  // --- small helpers ------------------------------------------------------------

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function scroller() {
    let node = list ? list.parentElement : null;
    while (node && node !== document.body) {
      const style = getComputedStyle(node);
      if (/(auto|scroll)/.test(style.overflowY) && node.scrollHeight > node.clientHeight) {
        return node;
      }
      node = node.parentElement;
    }
    return document.scrollingElement || document.documentElement;
  }

  function nearBottom() {
    const box = scroller();
    return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToNewest() {
    const box = scroller();
    box.scrollTop = box.scrollHeight;
  }

  function newestShownId() {
    let newest = lastMessageId;
    if (list) {
      list.querySelectorAll("li[data-message-id]").forEach((item) => {
        newest = Math.max(newest, parseInt(item.dataset.messageId, 10) || 0);
      });
    }
    return newest;
  }

  // Forms rendered outside a request (websocket fragments) carry no CSRF token.
  function fillCsrf(scope) {
    scope.querySelectorAll("form[method=post]").forEach((form) => {
      let field = form.querySelector("input[name=csrfmiddlewaretoken]");
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "csrfmiddlewaretoken";
        form.prepend(field);
      }
      if (!field.value) field.value = csrfToken();
    });
  }

  // --- the composer -------------------------------------------------------------

  function busy() {
    if (serverBusy) return true;
    for (const task of tasks.values()) {
      if (UNFINISHED.includes(task.status)) return true;
    }
    return false;
  }

  function setNotice(text, isError) {
    if (!notice) return;
    notice.textContent = text || "";
    notice.classList.toggle("composer__notice--error", Boolean(isError && text));
  }

  function updateComposer() {
    if (!composer || !input || !sendButton) return;
    const waiting = busy();
    const locked = waiting || sending;
    input.disabled = locked;
    sendButton.disabled = locked;
    if (waiting) {
      composer.dataset.busy = "1";
      if (notice && !notice.classList.contains("composer__notice--error")) setNotice(WAITING_TEXT);
    } else {
      delete composer.dataset.busy;
      if (notice && notice.textContent === WAITING_TEXT) setNotice("");
      if (refocus && !sending) {
        refocus = false;
        input.focus();
      }
    }
  }

  // --- task status lines ----------------------------------------------------------

  function labelFor(task) {
    if (task.status === "processing") {
      const step = (task.current_step || "").replace(/_/g, " ").trim();
      return step ? `Processing · ${step}` : "Processing";
    }
    return (
      { pending: "Pending", failed: "Failed", timeout: "Timed out", completed: "Completed" }[
        task.status
      ] || task.status
    );
  }

  function errorFor(task) {
    const head =
      task.status === "timeout"
        ? "The assistant did not answer in time."
        : "The assistant could not reply.";
    const detail = (task.status_message || "").trim();
    return detail ? `${head} ${detail}` : head;
  }

  function child(element, className, tag) {
    let node = element.querySelector(`:scope > .${className}`);
    if (!node) {
      node = document.createElement(tag || "span");
      node.className = className;
      element.append(node);
    }
    return node;
  }

  // The same markup as templates/chat/_task_status.html.
  function renderStatus(element, task) {
    const finishedBadly = task.status === "failed" || task.status === "timeout";
    element.className = `task-status task-status--${task.status}`;
    element.dataset.status = task.status;
    element.dataset.version = String(task.version);
    let spinner = element.querySelector(":scope > .task-status__spinner");
    if (UNFINISHED.includes(task.status)) {
      if (!spinner) {
        spinner = document.createElement("span");
        spinner.className = "task-status__spinner";
        spinner.setAttribute("aria-hidden", "true");
        element.prepend(spinner);
      }
    } else if (spinner) {
      spinner.remove();
    }
    child(element, "task-status__label").textContent = labelFor(task);
    child(element, "task-status__message").textContent = UNFINISHED.includes(task.status)
      ? task.status_message || ""
      : "";
    const error = element.querySelector(":scope > .task-status__error");
    const retry = element.querySelector(":scope > form.task-retry");
    if (!finishedBadly) {
      if (error) error.remove();
      if (retry) retry.remove();
      return;
    }
    // Keep the server's wording when it rendered the error (it knows error_details).
    if (!error) child(element, "task-status__error", "p").textContent = errorFor(task);
    if (!retry) element.append(retryForm(element));
  }

  function retryForm(element) {
    const item = element.closest("li[data-message-id]");
    const form = document.createElement("form");
    form.className = "task-retry";
    form.method = "post";
    const messageId = item ? item.dataset.messageId : "";
    form.action = `/chat/${conversationId}/messages/${messageId}/retry/`;
    const token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrfmiddlewaretoken";
    token.value = csrfToken();
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "button button--small";
    button.textContent = "Retry";
    form.append(token, button);
    return form;
  }

  // A status element from the page or a fragment: bring it to the newest known state.
  function reconcile(element) {
    const id = element.dataset.taskId;
    const shown = {
      id: Number(id),
      status: element.dataset.status,
      version: parseInt(element.dataset.version, 10) || 0,
    };
    const known = tasks.get(id);
    if (!known || shown.version > known.version) {
      tasks.set(id, Object.assign({}, known, shown));
      return;
    }
    if (known.version > shown.version) {
      if (known.status === "completed") element.remove();
      else if (known.task_type) renderStatus(element, known);
    }
  }

  function applyTask(task) {
    const id = String(task.id);
    const known = tasks.get(id);
    if (known && task.version <= known.version) return; // stale: overtaken by a newer frame
    tasks.set(id, task);
    const element = document.getElementById(`task-${id}`);
    if (element) {
      const atBottom = nearBottom();
      if (task.status === "completed") element.remove();
      else renderStatus(element, task);
      if (atBottom) scrollToNewest();
    }
    updateComposer();
  }

  // --- messages -----------------------------------------------------------------

  function insertMessage(html, message, force) {
    if (!list) return;
    const id = String(message.id);
    const incoming = fragment(html);
    if (!incoming) return;
    fillCsrf(incoming);
    const existing = document.getElementById(`message-${id}`);
    const atBottom = nearBottom();
    if (existing) {
      // Already shown. A retry links the message to a new task: take the new status line.
      const newStatus = incoming.querySelector(".task-status");
      const oldStatus = existing.querySelector(".task-status");
      if (newStatus && (!oldStatus || oldStatus.dataset.taskId !== newStatus.dataset.taskId)) {
        const newer = tasks.get(newStatus.dataset.taskId);
        if (!(newer && newer.status === "completed")) {
          if (oldStatus) oldStatus.replaceWith(newStatus);
          else existing.append(newStatus);
          reconcile(newStatus);
        }
      }
    } else {
      let before = null;
      for (const item of list.querySelectorAll("li[data-message-id]")) {
        if ((parseInt(item.dataset.messageId, 10) || 0) > message.id) {
          before = item;
          break;
        }
      }
      list.insertBefore(incoming, before);
      incoming.querySelectorAll(".task-status").forEach(reconcile);
      const empty = root.querySelector(".messages__empty");
      if (empty) empty.remove();
      if (message.id > lastMessageId) refreshSidebar(message, incoming);
    }
    lastMessageId = Math.max(lastMessageId, message.id);
    if (force || atBottom) scrollToNewest();
    updateComposer();
  }

  // --- the socket -----------------------------------------------------------------

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function sync() {
    const unfinished = [];
    for (const [id, task] of tasks) {
      if (UNFINISHED.includes(task.status)) unfinished.push(Number(id));
    }
    syncing = true;
    send({ type: "sync", after_message_id: newestShownId(), task_ids: unfinished });
    // Frames come in order: the pong says the sync's answers are all in.
    send({ type: "ping" });
  }

  function onFrame(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (frame.type === "message.created") {
      insertMessage(frame.html, frame.message, false);
    } else if (frame.type === "task.status") {
      applyTask(frame.task);
    } else if (frame.type === "pong") {
      clearTimeout(pongTimer);
      if (syncing) {
        syncing = false;
        serverBusy = false; // every unfinished task has been named by now
        updateComposer();
      }
    } else if (frame.type === "error") {
      console.warn("chat socket:", frame.error);
    }
  }

  function showOffline(offline) {
    if (!connectionStatus) return;
    connectionStatus.hidden = !offline;
    if (offline && !gone) connectionStatus.textContent = "Reconnecting…";
  }

  function heartbeat() {
    clearInterval(heartbeatTimer);
    heartbeatTimer = setInterval(() => {
      send({ type: "ping" });
      clearTimeout(pongTimer);
      // A socket that stopped answering (a laptop that slept, a dropped route) is dead.
      pongTimer = setTimeout(() => socket && socket.close(), HEARTBEAT_TIMEOUT_MS);
    }, HEARTBEAT_MS);
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (gone || (socket && socket.readyState <= WebSocket.OPEN)) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/chat/${conversationId}/`);
    socket = ws;
    ws.addEventListener("open", () => {
      attempts = 0;
      showOffline(false);
      root.dataset.live = "1";
      sync();
      heartbeat();
    });
    ws.addEventListener("message", onFrame);
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      syncing = false;
      delete root.dataset.live;
      clearInterval(heartbeatTimer);
      clearTimeout(pongTimer);
      if (event.code === 4404) {
        gone = true;
        showOffline(true);
        if (connectionStatus) connectionStatus.textContent = "This conversation no longer exists.";
        return;
      }
      showOffline(true);
      scheduleReconnect();
    });
  }

  // Capped exponential backoff with jitter (a delay between half and all of the
  // ceiling), so a restarted server is not hit by every page at the same moment.
  function scheduleReconnect() {
    if (reconnectTimer || gone) return;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempts);
    attempts += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    reconnectTimer = setTimeout(connect, delay);
  }

  window.addEventListener("online", () => {
    attempts = 0;
    if (!socket) connect();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !socket) connect();
  });

  // --- sending with fetch -------------------------------------------------------------

  // The form data is read before anything is disabled (disabled fields are not sent).
  async function post(form, data) {
    const response = await fetch(form.action, {
      method: "POST",
      body: data,
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
    });
    let body = {};
    try {
      body = await response.json();
    } catch (error) {
      body = { error: `The server answered ${response.status}.` };
    }
    return { ok: response.ok, status: response.status, body };
  }

  // --- the sidebar: the open conversation's entry follows its newest message --------

  const PREVIEW_LENGTH = 100;

  function refreshSidebar(message, fragment) {
    const link = document.querySelector('.conversation-link[aria-current="page"]');
    const body = fragment.querySelector(".message__body");
    if (!link || !body) return;
    // The rendered text, so Markdown marks do not show (as on the server's list).
    const line = body.textContent.replace(/\s+/g, " ").trim();
    const text = line.length > PREVIEW_LENGTH ? `${line.slice(0, PREVIEW_LENGTH - 1)}…` : line;
    const preview = link.querySelector(".conversation-link__preview");
    if (preview) preview.textContent = (message.role === "assistant" ? "Assistant: " : "") + text;
    const time = link.querySelector(".conversation-link__time");
    if (time) {
      time.textContent = "now";
      time.dateTime = message.created_at;
    }
    const item = link.closest("li");
    if (item && item.parentElement && item.parentElement.firstElementChild !== item) {
      item.parentElement.prepend(item); // newest activity first, as the server orders it
    }
  }

  function showTitle(title) {
    if (!title) return;
    const heading = document.getElementById("conversation-title");
    if (heading) heading.textContent = title;
    const link = document.querySelector('.conversation-link[aria-current="page"]');
    const name = link && link.querySelector(".conversation-link__title");
    if (name) name.textContent = title;
    document.title = `${title} · Assistant`;
  }

  function applySent(body) {
    if (body.conversation) showTitle(body.conversation.title);
    if (body.task) applyTask(body.task);
    if (body.html && body.message) insertMessage(body.html, body.message, true);
  }

  if (composer && input) {
    composer.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (sending || busy()) return;
      if (!input.value.trim()) {
        setNotice("Write a message before sending.", true);
        return;
      }
      const data = new FormData(composer);
      sending = true;
      refocus = true;
      setNotice("Sending…");
      updateComposer();
      try {
        const result = await post(composer, data);
        if (result.ok) {
          input.value = "";
          setNotice("");
          applySent(result.body);
        } else {
          setNotice(result.body.error || `Not sent (${result.status}).`, true);
        }
      } catch (error) {
        setNotice("Not sent: the server cannot be reached. Your message is still here.", true);
      } finally {
        sending = false;
        updateComposer();
        if (!busy()) input.focus();
      }
    });

    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.shiftKey || event.altKey) return;
      if (event.ctrlKey || event.metaKey || event.isComposing) return;
      event.preventDefault();
      if (!sendButton.disabled) composer.requestSubmit(sendButton);
    });

    input.addEventListener("input", () => {
      if (notice && notice.classList.contains("composer__notice--error")) setNotice("");
      updateComposer();
    });
  }

  // Retry buttons (rendered by the server or built above) post with fetch too.
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

  // --- start ----------------------------------------------------------------------

  root.querySelectorAll(".task-status[data-task-id]").forEach(reconcile);
  fillCsrf(root);
  updateComposer();
  connect();
})();

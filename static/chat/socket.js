// The conversation's websocket: connect, resync, reconnect with backoff.
//
// On every (re)connect the page sends `sync` with the newest message id shown
// and the tasks it still shows as unfinished, so nothing missed while offline
// is lost and nothing is shown twice (see the README, "Live updates and
// deploying").

import { state, UNFINISHED } from "./state.js";
import { insertMessage, insertTooLarge, applyTask, newestShownId } from "./messages.js";
import { updateComposer } from "./composer.js";
import { applyDelta, onStreamGap } from "./stream.js";

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;
const HEARTBEAT_MS = 25000;
const HEARTBEAT_TIMEOUT_MS = 10000;

let attempts = 0;
let reconnectTimer = null;
let heartbeatTimer = null;
let pongTimer = null;
let notice = null;

function send(frame) {
  const socket = state.socket;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function sync() {
  const unfinished = [];
  for (const [id, task] of state.tasks) {
    if (UNFINISHED.includes(task.status)) unfinished.push(Number(id));
  }
  state.syncing = true;
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
    if (frame.too_large) insertTooLarge(frame.message, frame.switches);
    else insertMessage(frame.html, frame.message, false, frame.switches);
  } else if (frame.type === "task.status") {
    applyTask(frame.task, frame.html);
  } else if (frame.type === "message.delta") {
    applyDelta(frame);
  } else if (frame.type === "sync.reset") {
    window.location.reload(); // further behind than one page: start from the server's page
  } else if (frame.type === "pong") {
    clearTimeout(pongTimer);
    if (state.syncing) {
      state.syncing = false;
      state.serverBusy = false; // every unfinished task has been named by now
      updateComposer();
    }
  } else if (frame.type === "error") {
    console.warn("chat socket:", frame.error);
  }
}

function showOffline(offline) {
  if (!notice) return;
  notice.hidden = !offline;
  if (offline && !state.gone) notice.textContent = "Reconnecting…";
}

function heartbeat() {
  clearInterval(heartbeatTimer);
  heartbeatTimer = setInterval(() => {
    send({ type: "ping" });
    clearTimeout(pongTimer);
    // A socket that stopped answering (a laptop that slept, a dropped route) is dead.
    pongTimer = setTimeout(() => state.socket && state.socket.close(), HEARTBEAT_TIMEOUT_MS);
  }, HEARTBEAT_MS);
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (state.gone || (state.socket && state.socket.readyState <= WebSocket.OPEN)) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${state.root.dataset.syncUrl}`);
  state.socket = ws;
  ws.addEventListener("open", () => {
    attempts = 0;
    showOffline(false);
    state.root.dataset.live = "1";
    sync();
    heartbeat();
  });
  ws.addEventListener("message", onFrame);
  ws.addEventListener("close", (event) => {
    if (state.socket !== ws) return;
    state.socket = null;
    state.syncing = false;
    delete state.root.dataset.live;
    clearInterval(heartbeatTimer);
    clearTimeout(pongTimer);
    if (event.code === 4404) {
      state.gone = true;
      showOffline(true);
      if (notice) notice.textContent = "This conversation no longer exists.";
      return;
    }
    // 4429: too many sockets open for this account (other tabs); retry later,
    // from the long end of the backoff.
    if (event.code === 4429) attempts = Math.max(attempts, 5);
    // 4503: the server could not reach its channel layer (Redis); try again
    // after a few seconds rather than at once.
    if (event.code === 4503) attempts = Math.max(attempts, 3);
    showOffline(true);
    scheduleReconnect();
  });
}

// Capped exponential backoff with jitter (a delay between half and all of the
// ceiling), so a restarted server is not hit by every page at the same moment.
function scheduleReconnect() {
  if (reconnectTimer || state.gone) return;
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempts);
  attempts += 1;
  const delay = ceiling / 2 + Math.random() * (ceiling / 2);
  reconnectTimer = setTimeout(connect, delay);
}

export function startSocket() {
  notice = document.getElementById("connection-status");
  // A streamed piece that does not continue what the page has: ask again.
  onStreamGap(() => {
    if (!state.syncing) sync();
  });
  window.addEventListener("online", () => {
    attempts = 0;
    if (!state.socket) connect();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !state.socket) connect();
  });
  connect();
}

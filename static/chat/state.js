// The one state object the conversation page's modules share.
//
// The server-rendered page is the truth the first time; after that the
// modules keep here what they learned from the socket and from sends.

export const UNFINISHED = ["pending", "processing"];

export const state = {
  root: null, // #conversation
  list: null, // #messages
  conversationId: null,
  // Newest state known per task id (a string): {id, status, version, ...}.
  tasks: new Map(),
  lastMessageId: 0,
  // Replies being streamed, per task id (a string): {points: [code points]}.
  streams: new Map(),
  socket: null,
  syncing: false,
  sending: false,
  stopping: false,
  gone: false, // the conversation was deleted: stop reconnecting
  // The server said "busy" when it rendered the page; trusted until a sync says otherwise.
  serverBusy: false,
  refocus: false,
};

export function busy() {
  if (state.serverBusy) return true;
  for (const task of state.tasks.values()) {
    if (UNFINISHED.includes(task.status)) return true;
  }
  return false;
}

// Drafts: the composer's text kept per conversation in localStorage (the
// textarea's data-draft-key), so a reload, a refused send or a reader who
// leaves does not lose it. A first message sent by a plain form post keeps its
// draft until the conversation's page shows the message.

const PREFIX = "chat-draft:";
const SENT_KEY = "chat-draft:sent";

function storage() {
  try {
    return window.localStorage;
  } catch (error) {
    return null; // storage disabled: no drafts, everything else works
  }
}

export function draftKeyOf(input) {
  return input.dataset.draftKey ? PREFIX + input.dataset.draftKey : "";
}

export function saveDraft(key, text) {
  const store = storage();
  if (!store || !key) return;
  try {
    if (text.trim()) store.setItem(key, text);
    else store.removeItem(key);
  } catch (error) {
    // full or refused: the text is still in the box
  }
}

export function clearDraft(key) {
  const store = storage();
  if (store && key) store.removeItem(key);
}

// The draft, unless the box already holds text (the server refilled it after a refusal).
export function restoreDraft(key, input) {
  const store = storage();
  if (!store || !key || input.value) return;
  const draft = store.getItem(key);
  if (draft) input.value = draft;
}

// A plain post is on its way: its draft goes once a page shows the message.
export function rememberSent(key, text) {
  try {
    window.sessionStorage.setItem(SENT_KEY, JSON.stringify({ key, text: text.trim() }));
  } catch (error) {
    // no session storage: the draft stays until it is sent again
  }
}

// On a conversation's page: a draft sent by a plain post that this page
// shows as a message was sent, so it goes.
export function settleSentDraft(list) {
  let sent = null;
  try {
    sent = JSON.parse(window.sessionStorage.getItem(SENT_KEY) || "null");
  } catch (error) {
    return;
  }
  if (!sent || !sent.key || !list) return;
  const sources = list.querySelectorAll("li.message--user template.message__source");
  const shown = Array.from(sources).some((source) => source.content.textContent.trim() === sent.text);
  if (!shown) return;
  clearDraft(sent.key);
  window.sessionStorage.removeItem(SENT_KEY);
}

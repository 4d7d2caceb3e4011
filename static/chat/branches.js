// Branches: the page shows one branch of the conversation's tree.
//
// - Regenerate (a form under each reply) and Edit (a link under each of the
//   user's messages, opened in place here: Enter saves, Esc cancels) post with
//   fetch; the server then shows the new branch by default, so the thread is
//   swapped for that page's.
// - The ‹ i / n › switch links to ?leaf=…; here it swaps the thread in place,
//   keeping the scroll position, and puts that address in the location bar
//   so a reload shows the same branch.
// - Live frames: a message that continues the shown branch is appended (by
//   messages.js); one on another branch only swaps in the server's switch
//   of its shown sibling (the page knows its branch by its messages' ids).
// Without JavaScript all of it works through the forms and links themselves.

import { state } from "./state.js";
import { fillCsrf, fragment, post, announce } from "./dom.js";
import { enhance } from "./enhance.js";
import { handleRating } from "./feedback.js";
import { openEditor } from "./editor.js";

// --- the shown branch ----------------------------------------------------------------------

function parentOf(element) {
  const actions = element && element.querySelector(".message__actions");
  return actions ? actions.dataset.parentId || "" : null;
}

function shownItems() {
  return state.list ? Array.from(state.list.querySelectorAll(":scope > li[data-message-id]")) : [];
}

// Where an incoming message belongs: "append" (it continues the shown
// branch), "sibling" (another version of a shown message: counted), or "elsewhere".
export function placeOf(incoming) {
  const parent = parentOf(incoming);
  if (parent === null) return "append"; // a fragment without branch data
  const items = shownItems();
  const last = items[items.length - 1];
  if (!last) return parent === "" ? "append" : "elsewhere";
  if (parent === last.dataset.messageId) return "append";
  if (items.some((item) => parentOf(item) === parent)) return "sibling";
  return "elsewhere";
}

const announced = new Set(); // ids already announced (frames can repeat)

// The count a switch shows (its data-count), 0 without one.
function countOf(nav) {
  return nav ? parseInt(nav.dataset.count, 10) || 0 : 0;
}

// Another version of a shown message arrived: the shown one's switch becomes
// the server's (the frame's `switches`, keyed by message id), never one that
// counts fewer versions than the page already shows.
export function countSibling(incoming, message, switches) {
  const parent = parentOf(incoming);
  const shown = shownItems().find((item) => parentOf(item) === parent);
  if (!shown || !switches) return;
  const fresh = fragment(switches[shown.dataset.messageId]);
  if (!fresh) return;
  const nav = shown.querySelector(".versions");
  if (countOf(nav) > countOf(fresh)) return;
  if (nav) nav.replaceWith(fresh);
  else shown.querySelector(".message__actions").append(fresh);
  if (announced.has(String(message.id))) return;
  announced.add(String(message.id));
  announce("Another version of a message arrived: switch to it with ›.");
}

// A send continues the branch the page shows: the composer's parent_id field
// names its leaf (the server renders it disabled on an older page, ?before=,
// and on an empty conversation, whose sends follow the current leaf).
export function followLeaf(value) {
  const field = document.querySelector("#composer input[name=parent_id]");
  if (!field) return;
  if (value === undefined) {
    const items = shownItems();
    if (!field.disabled && items.length) field.value = items[items.length - 1].dataset.messageId;
    return;
  }
  field.disabled = !value;
  field.value = value || "";
}

// --- swapping the thread ---------------------------------------------------------------------

let onSwapped = () => {};

async function swapThread(href, { keepScroll }) {
  const response = await fetch(href, {
    headers: { Accept: "text/html" },
    credentials: "same-origin",
  });
  if (!response.ok) throw new Error(`status ${response.status}`);
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const list = page.getElementById("messages");
  if (!list) throw new Error("no thread");
  const box = document.scrollingElement || document.documentElement;
  const top = box.scrollTop;
  state.root.querySelectorAll(".history-link").forEach((link) => link.remove());
  page.querySelectorAll(".history-link").forEach((link) => {
    state.list.before(document.importNode(link, true));
  });
  const fresh = enhance(document.importNode(list, true));
  state.list.replaceWith(fresh);
  state.list = fresh;
  const root = page.getElementById("conversation");
  const newest = root ? parseInt(root.dataset.lastMessageId || "0", 10) || 0 : 0;
  state.lastMessageId = Math.max(state.lastMessageId, newest);
  fillCsrf(fresh);
  const leaf = page.querySelector("#composer input[name=parent_id]");
  followLeaf(leaf ? leaf.value : "");
  onSwapped(fresh);
  if (keepScroll) box.scrollTop = top;
  else box.scrollTop = box.scrollHeight;
  history.replaceState(history.state, "", href);
}

function defaultPage() {
  return state.root.dataset.pageUrl;
}

// --- regenerate ------------------------------------------------------------------------------

// Every Regenerate button submits the page's one action form with its own formaction.
async function regenerate(form, button, notify) {
  button.disabled = true;
  try {
    const result = await post({ action: button.formAction }, new FormData(form));
    if (!result.ok) {
      notify(result.body.error || `Regenerate refused (${result.status}).`);
      return;
    }
    await swapThread(defaultPage(), { keepScroll: false });
    announce("Asking the assistant for another reply.");
  } catch (error) {
    notify("Regenerate failed: the server cannot be reached.");
  } finally {
    if (button.isConnected) button.disabled = false;
  }
}

// --- wiring ---------------------------------------------------------------------------------------

export function installBranches({ notify, swapped }) {
  onSwapped = swapped || onSwapped;
  state.root.addEventListener("submit", (event) => {
    if (handleRating(event, notify)) return;
    const button = event.submitter;
    if (event.target.id !== "message-action" || !button || !button.formAction) return;
    event.preventDefault();
    regenerate(event.target, button, notify);
  });
  state.root.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    const edit = event.target.closest("a.message__edit");
    if (edit) {
      event.preventDefault();
      openEditor(edit, {
        notify,
        saved: async () => {
          await swapThread(defaultPage(), { keepScroll: false });
          announce("Your edited message was sent.");
        },
      });
      return;
    }
    const link = event.target.closest(".versions a[data-leaf]");
    if (!link) return;
    event.preventDefault();
    swapThread(link.href, { keepScroll: true }).catch(() => {
      window.location.href = link.href; // the plain link still works
    });
  });
}

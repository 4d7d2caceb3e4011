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
//   messages.js); one on another branch only updates the switch of its
//   shown sibling (the page knows its branch by its messages' ids).
// Without JavaScript all of it works through the forms and links themselves.

import { state } from "./state.js";
import { fillCsrf, post, announce } from "./dom.js";
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

const counted = new Set(); // ids already added to a switch (frames can repeat)

// Another version of a shown message arrived: its switch says one more, and
// its › leads to the new one when it was the last.
export function countSibling(incoming, message) {
  if (counted.has(String(message.id))) return;
  counted.add(String(message.id));
  const parent = parentOf(incoming);
  const shown = shownItems().find((item) => parentOf(item) === parent);
  if (!shown) return;
  let nav = shown.querySelector(".versions");
  if (!nav) {
    const fresh = incoming.querySelector(".versions");
    if (!fresh) return;
    nav = fresh.cloneNode(true);
    shown.querySelector(".message__actions").append(nav);
    const count = nav.querySelector(".versions__count");
    const total = parseInt(count.textContent.split("/")[1], 10) || 2;
    count.textContent = `1 / ${total}`;
    nav.querySelector(".versions__previous").replaceWith(placeholder("versions__previous", "‹"));
  } else {
    const count = nav.querySelector(".versions__count");
    const [index, total] = count.textContent.split("/").map((part) => parseInt(part, 10));
    count.textContent = `${index} / ${total + 1}`;
  }
  const next = nav.querySelector(".versions__next");
  if (next && next.tagName !== "A") {
    const link = document.createElement("a");
    link.className = "versions__next";
    link.rel = "next";
    link.setAttribute("aria-label", "Next version");
    link.dataset.leaf = String(message.id);
    const url = new URL(state.root.dataset.pageUrl, location.href);
    url.searchParams.set("leaf", String(message.id));
    link.href = url.pathname + url.search;
    link.textContent = "›";
    next.replaceWith(link);
  }
  announce("Another version of a message arrived: switch to it with ›.");
}

function placeholder(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.setAttribute("aria-hidden", "true");
  span.textContent = text;
  return span;
}

// A send continues the branch the page shows: the composer names its leaf
// (the server leaves the field out of an older page, ?before=, and of an
// empty conversation, whose sends follow the current leaf).
export function followLeaf(value) {
  const composer = document.getElementById("composer");
  if (!composer) return;
  let field = composer.querySelector("input[name=parent_id]");
  if (value === undefined) {
    const items = shownItems();
    if (field && items.length) field.value = items[items.length - 1].dataset.messageId;
    return;
  }
  if (!value) {
    if (field) field.remove();
    return;
  }
  if (!field) {
    field = document.createElement("input");
    field.type = "hidden";
    field.name = "parent_id";
    composer.prepend(field);
  }
  field.value = value;
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
  const fresh = document.importNode(list, true);
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

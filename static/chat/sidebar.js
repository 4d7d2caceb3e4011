// The sidebar and the heading follow the open conversation without a reload.

import { localizeTimes } from "./times.js";

const PREVIEW_LENGTH = 100;

function currentLink() {
  return document.querySelector('.conversation-link[aria-current="page"]');
}

// The open conversation's entry shows its newest message and moves to the top.
export function followNewestMessage(message, element) {
  const link = currentLink();
  const body = element.querySelector(".message__body");
  if (!link || !body) return;
  // The rendered text, so Markdown marks do not show (as on the server's list).
  const line = body.textContent.replace(/\s+/g, " ").trim();
  const text = line.length > PREVIEW_LENGTH ? `${line.slice(0, PREVIEW_LENGTH - 1)}…` : line;
  const preview = link.querySelector(".conversation-link__preview");
  if (preview) preview.textContent = (message.role === "assistant" ? "Assistant: " : "") + text;
  const time = link.querySelector(".conversation-link__time");
  if (time && message.created_at) {
    time.setAttribute("datetime", message.created_at);
    localizeTimes(time);
  }
  const item = link.closest("li");
  if (item && item.parentElement && item.parentElement.firstElementChild !== item) {
    item.parentElement.prepend(item); // newest activity first, as the server orders it
  }
}

export function showTitle(title) {
  if (!title) return;
  const heading = document.getElementById("conversation-title");
  if (heading) heading.textContent = title;
  const link = currentLink();
  const name = link && link.querySelector(".conversation-link__title");
  if (name) name.textContent = title;
  document.title = `${title} · Assistant`;
}

// Copy buttons: a code block's code, and a whole message's Markdown source.
//
// The server renders them hidden (they need this script) and the message's
// source in a <template class="message__source">; a click copies it and the
// button says "Copied" for a moment.

import { announce } from "./announce.js";

const SHOWN_MS = 1500;

export function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  try {
    document.execCommand("copy");
  } finally {
    area.remove();
  }
  return Promise.resolve();
}

export function revealCopyButtons(scope = document) {
  scope.querySelectorAll("button.copy-code[hidden], button.message__copy[hidden]").forEach((button) => {
    button.hidden = false;
  });
}

function textFor(button) {
  if (button.classList.contains("copy-code")) {
    const code = button.parentElement.querySelector("pre");
    return code ? code.innerText : null;
  }
  const message = button.closest("[data-message-id]");
  const source = message && message.querySelector("template.message__source");
  return source ? source.content.textContent : null;
}

function flash(button, text) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  button.textContent = text;
  clearTimeout(Number(button.dataset.timer));
  button.dataset.timer = String(
    setTimeout(() => {
      button.textContent = label;
    }, SHOWN_MS),
  );
}

export function installCopyButtons() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy-code, button.message__copy");
    if (!button) return;
    const text = textFor(button);
    if (text === null) return;
    copyText(text).then(
      () => {
        flash(button, "Copied");
        announce("Copied to the clipboard.");
      },
      () => flash(button, "Copy failed"),
    );
  });
}

// Edit a message of yours in place: a textarea with Save and Cancel where the
// message was (Enter saves, Shift+Enter adds a line, Esc cancels). It posts
// to the Edit link's own address, the small edit page that serves readers
// without JavaScript.

import { fillCsrf, post } from "./dom.js";

function closeEditor(item) {
  const editor = item.querySelector(".message-editor");
  if (editor) editor.remove();
  const body = item.querySelector(".message__body");
  if (body) body.hidden = false;
  const link = item.querySelector(".message__edit");
  if (link) link.focus();
}

export function openEditor(link, { notify, saved }) {
  const item = link.closest("li[data-message-id]");
  if (!item || item.querySelector(".message-editor")) return;
  const source = item.querySelector("template.message__source");
  const body = item.querySelector(".message__body");
  const form = document.createElement("form");
  form.className = "message-editor";
  form.method = "post";
  form.action = link.href;
  const input = document.createElement("textarea");
  input.name = "content";
  input.className = "composer__input message-editor__input";
  input.rows = 3;
  input.setAttribute("aria-label", "Edit your message");
  input.value = source ? source.content.textContent : body ? body.textContent : "";
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "button button--primary button--small";
  save.textContent = "Save";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "button button--ghost button--small";
  cancel.textContent = "Cancel";
  const error = document.createElement("p");
  error.className = "message-editor__error";
  error.setAttribute("role", "alert");
  form.append(input, save, cancel, error);
  fillCsrf(wrap(form));
  if (body) {
    body.hidden = true;
    body.after(form);
  } else {
    item.append(form);
  }
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
  cancel.addEventListener("click", () => closeEditor(item));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeEditor(item);
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const result = await post(form, new FormData(form));
      if (!result.ok) {
        error.textContent = result.body.error || `Edit refused (${result.status}).`;
        return;
      }
      await saved();
    } catch (failure) {
      notify("Edit failed: the server cannot be reached.");
    } finally {
      if (save.isConnected) save.disabled = false;
    }
  });
}

// fillCsrf works on a scope: give a detached form one.
function wrap(form) {
  const scope = document.createElement("div");
  scope.append(form);
  return scope;
}

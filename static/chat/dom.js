// Small DOM helpers shared by the modules.
import { enhance } from "./enhance.js";

export { announce } from "./announce.js";

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

// The first element of a server-rendered HTML fragment.
export function fragment(html) {
  const template = document.createElement("template");
  template.innerHTML = (html || "").trim();
  return enhance(template.content.firstElementChild);
}

// All the nodes of a server-rendered HTML fragment (a reply's body so far).
export function fragmentContent(html) {
  const template = document.createElement("template");
  template.innerHTML = html || "";
  return enhance(template.content);
}

// Forms rendered outside a request (websocket fragments) carry no CSRF token.
export function fillCsrf(scope) {
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

// POST a form with fetch; the JSON answer (or a stand-in error) either way.
export async function post(form, data) {
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

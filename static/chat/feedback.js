// A reply's 👍/👎: its buttons submit the page's one action form
// (#message-action) with their own formaction, and the server answers with
// the reply's new fragment, which takes the old one's place.

import { announce, fillCsrf, fragment, post } from "./dom.js";

async function rate(form, button, notify) {
  const data = new FormData(form);
  data.set("rating", button.value);
  button.disabled = true;
  try {
    const result = await post({ action: button.formAction }, data);
    if (!result.ok) {
      notify(result.body.error || `Rating refused (${result.status}).`);
      return;
    }
    const shown = document.getElementById(`message-${result.body.message_id}`);
    const fresh = fragment(result.body.html);
    if (shown && fresh) {
      fillCsrf(fresh);
      shown.replaceWith(fresh);
      // Focus stays on the same button of the new fragment (its value toggles).
      const kind = button.classList.contains("message__rate--down") ? "down" : "up";
      const same = fresh.querySelector(`.message__rate--${kind}`);
      if (same) same.focus();
    }
    const rating = result.body.feedback.rating;
    announce(rating === "none" ? "Rating removed." : "Thank you: your rating is saved.");
  } catch (error) {
    notify("Rating failed: the server cannot be reached.");
  } finally {
    if (button.isConnected) button.disabled = false;
  }
}

// True when the submit was a rating (and is now handled here).
export function handleRating(event, notify) {
  const button = event.submitter;
  if (event.target.id !== "message-action" || !button || button.name !== "rating") return false;
  event.preventDefault();
  rate(event.target, button, notify);
  return true;
}

// Words for screen readers: the page's one live region (#announcer).
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region || !text) return;
  // Emptied first, so the same words twice are announced twice.
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

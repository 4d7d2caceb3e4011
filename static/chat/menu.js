// Disclosure menus (<details class="menu">, such as a conversation's Manage
// menu): they open and close without JavaScript; here Esc closes the open
// one and gives the focus back to its button, and a click outside closes it.

export function installMenus() {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing) return;
    const open = document.querySelector("details.menu[open]");
    if (!open) return;
    event.preventDefault(); // handled: the reply is not stopped by this Esc
    open.open = false;
    const button = open.querySelector("summary");
    if (button) button.focus();
  });
  document.addEventListener("click", (event) => {
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      if (!menu.contains(event.target)) menu.open = false;
    });
  });
}

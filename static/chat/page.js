// Small enhancements of every page (the live updates are in chat.js).
// Copy buttons of code blocks: rendered hidden by the server, shown when this runs.
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      area.remove();
    }
    return Promise.resolve();
  }

  function reveal(root) {
    root.querySelectorAll("button.copy-code[hidden]").forEach((button) => {
      button.hidden = false;
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy-code");
    if (!button) return;
    const code = button.parentElement.querySelector("pre");
    if (!code) return;
    copyText(code.innerText).then(
      () => {
        button.textContent = "Copied";
        setTimeout(() => (button.textContent = "Copy"), 1500);
      },
      () => {
        button.textContent = "Copy failed";
      },
    );
  });

  document.addEventListener("DOMContentLoaded", () => {
    reveal(document);
    // Fragments added later (live updates) get their buttons too.
    const list = document.getElementById("messages");
    if (list) {
      new MutationObserver(() => reveal(list)).observe(list, { childList: true, subtree: true });
      if (!location.hash && !/[?&]before=/.test(location.search)) {
        window.scrollTo(0, document.body.scrollHeight);
      }
    }
  });
})();

// Every page: times in the reader's zone, copy buttons. The live updates of a
// conversation are in chat.js (both are native ES modules, no build step).
import { startClock, startElapsed } from "./times.js";
import { installCopyButtons } from "./copy.js";
import { enhance } from "./enhance.js";

enhance(document);
installCopyButtons();
startClock();
startElapsed();
// Fragments added later (live updates, earlier messages) get the same.
new MutationObserver((records) => {
  for (const record of records) {
    record.addedNodes.forEach((node) => {
      if (node.nodeType === Node.ELEMENT_NODE) enhance(node);
    });
  }
}).observe(document.body, { childList: true, subtree: true });

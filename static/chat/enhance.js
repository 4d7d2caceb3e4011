// What every piece of server-made markup gets before it is shown: its times in
// the reader's zone and its copy buttons. The scripts that insert markup call it
// before they measure the page (a position kept after an insert stays true);
// page.js calls it for the page itself and for anything added otherwise.
import { localizeTimes } from "./times.js";
import { revealCopyButtons } from "./copy.js";

export function enhance(scope) {
  if (!scope) return scope;
  localizeTimes(scope);
  revealCopyButtons(scope);
  return scope;
}

// Where the reader is in the conversation, and following the newest text.

const NEAR_BOTTOM_PX = 120;

export function scroller() {
  return document.scrollingElement || document.documentElement;
}

export function nearBottom() {
  const box = scroller();
  return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
}

export function scrollToNewest() {
  const box = scroller();
  box.scrollTop = box.scrollHeight;
}

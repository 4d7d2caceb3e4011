// Times in the reader's own time zone and locale.
//
// The server writes every time as <time datetime="ISO 8601 with offset"> with
// a text in the server's zone (named) for readers without JavaScript. Here
// that text is replaced: `data-format="relative"` ("5 minutes ago", refreshed
// every minute) or a short date and time; the title holds the full date with
// the reader's zone.

const REFRESH_MS = 60 * 1000;

const full = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
  timeZoneName: "short",
});
const thisYear = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});
const otherYear = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

const STEPS = [
  ["second", 60],
  ["minute", 60],
  ["hour", 24],
  ["day", 7],
];

export function relativeText(date, now = new Date()) {
  let amount = Math.round((date.getTime() - now.getTime()) / 1000);
  if (Math.abs(amount) < 45) return relative.format(0, "second");
  for (const [unit, size] of STEPS) {
    if (Math.abs(amount) < size) return relative.format(amount, unit);
    amount = Math.round(amount / size);
  }
  return otherYear.format(date);
}

export function absoluteText(date, now = new Date()) {
  return (date.getFullYear() === now.getFullYear() ? thisYear : otherYear).format(date);
}

function show(element, now) {
  const date = new Date(element.getAttribute("datetime"));
  if (Number.isNaN(date.getTime())) return;
  const text =
    element.dataset.format === "relative" ? relativeText(date, now) : absoluteText(date, now);
  if (element.textContent !== text) element.textContent = text;
  element.title = full.format(date);
  element.dataset.localized = "1";
}

// Show every <time datetime> in `scope` (an element or the document) in the reader's zone.
export function localizeTimes(scope = document) {
  const now = new Date();
  if (scope instanceof Element && scope.matches("time[datetime]")) show(scope, now);
  scope.querySelectorAll("time[datetime]").forEach((element) => show(element, now));
}

// Relative times move on by themselves: refresh them every minute.
export function startClock() {
  setInterval(() => {
    const now = new Date();
    document.querySelectorAll('time[datetime][data-format="relative"]').forEach((element) => {
      show(element, now);
    });
  }, REFRESH_MS);
}

// The time waited on a status line ("No answer yet from the assistant (40 s)…")
// counts on every second, in the server's form ("40 s", "2 min 5 s").
const ELAPSED_MS = 1000;

export function elapsedText(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  if (whole < 60) return `${whole} s`;
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

export function startElapsed() {
  setInterval(() => {
    const now = Date.now();
    document.querySelectorAll("[data-elapsed-since]").forEach((element) => {
      const since = Date.parse(element.dataset.elapsedSince);
      if (Number.isNaN(since)) return;
      const text = elapsedText((now - since) / 1000);
      if (element.textContent !== text) element.textContent = text;
    });
  }, ELAPSED_MS);
}

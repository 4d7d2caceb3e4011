// Files in the composer. Without JavaScript the form's plain file input
// (`files`) sends them; with it: the Attach button (the input's label), drag
// and drop onto the conversation, paste of images, a chip per file (name,
// size, Remove) before sending, and upload progress. The picked files stay
// in the input itself (a DataTransfer), so the form's own data carries them.
// The server decides (type read from the content, sizes, count); the checks
// here only say it sooner.

import { csrfToken, post } from "./dom.js";

let input = null;
let chips = null;
let chipTemplate = null;
let progress = null;
let maxFiles = 0;
let maxBytes = 0;
let say = () => {};
let pasted = 0;

export function hasFiles() {
  return Boolean(input && input.files && input.files.length);
}

function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function setFiles(list) {
  const transfer = new DataTransfer();
  list.forEach((file) => transfer.items.add(file));
  input.files = transfer.files;
  render();
}

function render() {
  chips.replaceChildren();
  Array.from(input.files).forEach((file, index) => {
    const chip = chipTemplate.content.firstElementChild.cloneNode(true);
    chip.querySelector(".file-chip__name").textContent = file.name;
    chip.querySelector(".file-chip__size").textContent = sizeText(file.size);
    const remove = chip.querySelector(".file-chip__remove");
    remove.setAttribute("aria-label", `Remove ${file.name}`);
    remove.addEventListener("click", () => {
      setFiles(Array.from(input.files).filter((_file, i) => i !== index));
      input.focus();
    });
    chips.append(chip);
  });
}

// Add files (picked, dropped or pasted) to those already there, within the limits.
export function addFiles(added) {
  const files = [...Array.from(input.files), ...added];
  const tooBig = files.find((file) => maxBytes && file.size > maxBytes);
  if (tooBig) {
    say(`“${tooBig.name}” is ${sizeText(tooBig.size)}; each file can be at most ${sizeText(maxBytes)}.`, true);
  } else if (maxFiles && files.length > maxFiles) {
    say(`A message can carry at most ${maxFiles} files.`, true);
  } else {
    say("");
  }
  setFiles(files.filter((file) => !maxBytes || file.size <= maxBytes).slice(0, maxFiles || undefined));
}

export function clearFiles() {
  if (input) setFiles([]);
}

// The form's data sent with upload progress (XMLHttpRequest: fetch reports none).
export function sendForm(form, data) {
  if (!hasFiles()) return post(form, data);
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRFToken", csrfToken());
    progress.hidden = false;
    progress.value = 0;
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      progress.value = Math.round((100 * event.loaded) / event.total);
      progress.textContent = `${progress.value}%`;
    });
    request.addEventListener("load", () => {
      progress.hidden = true;
      let body = {};
      try {
        body = JSON.parse(request.responseText);
      } catch (error) {
        body = { error: (request.responseText || `The server answered ${request.status}.`).trim() };
      }
      resolve({ ok: request.status >= 200 && request.status < 300, status: request.status, body });
    });
    request.addEventListener("error", () => {
      progress.hidden = true;
      reject(new Error("network"));
    });
    request.send(data);
  });
}

function pastedName(file) {
  pasted += 1;
  const extension = (file.type.split("/")[1] || "png").replace(/[^a-z0-9]/g, "");
  return `pasted-image-${pasted}.${extension}`;
}

export function initFiles({ notice } = {}) {
  input = document.getElementById("composer-files");
  chips = document.getElementById("composer-chips");
  chipTemplate = document.getElementById("file-chip-template");
  progress = document.getElementById("composer-progress");
  if (!input || !chips || !chipTemplate || !progress || !window.DataTransfer) return;
  if (notice) say = notice;
  const box = input.closest(".composer__files");
  maxFiles = parseInt(box.dataset.maxFiles, 10) || 0;
  maxBytes = parseInt(box.dataset.maxBytes, 10) || 0;
  // The Attach button opens the (now hidden) native picker; the plain label
  // and input are what works without the script.
  const attach = document.getElementById("composer-attach");
  if (attach) {
    box.classList.add("composer__files--enhanced");
    input.hidden = true;
    attach.hidden = false;
    attach.addEventListener("click", () => input.click());
  }

  // The input keeps what was picked before: a new pick adds to it.
  let before = [];
  input.addEventListener("click", () => {
    before = Array.from(input.files);
  });
  input.addEventListener("change", () => {
    const picked = Array.from(input.files);
    setFiles(before);
    addFiles(picked);
    before = [];
  });

  const zone = document.getElementById("conversation") || input.form;
  zone.addEventListener("dragover", (event) => {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
    event.preventDefault();
    zone.classList.add("drop-target");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("drop-target");
  });
  zone.addEventListener("drop", (event) => {
    zone.classList.remove("drop-target");
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    addFiles(Array.from(event.dataTransfer.files));
  });

  const text = document.getElementById("composer-input");
  text.addEventListener("paste", (event) => {
    const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
    const images = files.filter((file) => file.type.startsWith("image/"));
    if (!images.length) return; // text is pasted as usual
    event.preventDefault();
    addFiles(images.map((file) => new File([file], pastedName(file), { type: file.type })));
  });
}

// The assistant picker: a plain <select name="assistant"> that works without
// JavaScript (the server shows the current assistant's description); with it,
// the description of the option being chosen shows beside the picker as the
// choice changes, so people see what each assistant is for before they switch
// or send. The descriptions come with the options (data-description), from
// the server.

function describe(select) {
  const box = select.closest("form, .composer__assistant")?.querySelector("[data-assistant-description]");
  if (!box) return;
  const option = select.selectedOptions[0];
  const text = (option && option.dataset.description) || "";
  box.textContent = text;
  box.hidden = !text;
}

export function installAssistantPickers(root = document) {
  root.querySelectorAll("select[data-assistant-picker]").forEach((select) => {
    describe(select);
    select.addEventListener("change", () => describe(select));
  });
}

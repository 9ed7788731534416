// The review desk's keys: a progressive enhancement; every action is also a plain form button.
// a approve, r reject, s skip, v show/blur the image, g grayscale. Keys never fire while the
// reviewer types (the note field, the token field); Esc leaves the note.
"use strict";

(function () {
  const TYPING = new Set(["text", "password", "search", "email", "url", "tel", "number"]);
  const VERDICTS = { a: "approve", r: "reject", s: "skip" };

  function typing(target) {
    if (!target || !target.tagName) return false;
    if (target.isContentEditable) return true;
    if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
    return target.tagName === "INPUT" && TYPING.has((target.type || "text").toLowerCase());
  }

  function toggle(id) {
    const box = document.getElementById(id);
    if (box) box.checked = !box.checked;
  }

  function submit(verdict) {
    const form = document.getElementById("verdict");
    if (!form || form.dataset.sent) return;
    const button = form.querySelector('button[value="' + verdict + '"]');
    if (!button) return;
    form.dataset.sent = "1";
    if (form.requestSubmit) form.requestSubmit(button);
    else button.click();
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && typing(event.target)) {
      event.target.blur();
      return;
    }
    if (typing(event.target)) return;
    const key = event.key.toLowerCase();
    if (key in VERDICTS) {
      event.preventDefault();
      submit(VERDICTS[key]);
    } else if (key === "v") {
      event.preventDefault();
      toggle("reveal");
    } else if (key === "g") {
      event.preventDefault();
      toggle("gray");
    }
  });

  // One verdict per page: a second click while the first is on its way sends nothing.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.id !== "verdict") return;
    if (form.dataset.busy) {
      event.preventDefault();
      return;
    }
    form.dataset.busy = "1";
  });
})();

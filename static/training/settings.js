// Training settings and round start: Ctrl+Enter (or Cmd+Enter) in a JSON box submits its form, as Enter
// does in a field (the form's first submit button: save, or start the round). No inline script (CSP).
(function () {
  "use strict";

  document.addEventListener("keydown", function (e) {
    var box = e.target;
    if (!box || box.tagName !== "TEXTAREA" || !box.hasAttribute("data-ctrl-enter-submits")) return;
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && box.form) {
      e.preventDefault();
      box.form.requestSubmit();
    }
  });
})();

// Researchers' instructions pages. Diff: n / j next change, p / k previous (focus moves to the change).
// Editor: Ctrl+Enter (or Cmd+Enter) in the text publishes. No inline script anywhere (CSP).
(function () {
  "use strict";

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName));
  }

  function hunks() { return Array.prototype.slice.call(document.querySelectorAll(".diff-hunk")); }

  function currentIndex(list) {
    var active = document.activeElement;
    for (var i = 0; i < list.length; i++) {
      if (list[i] === active || list[i].contains(active)) return i;
    }
    var hash = window.location.hash.slice(1);
    for (var j = 0; j < list.length; j++) {
      if (list[j].id === hash) return j;
    }
    return -1;
  }

  function move(step) {
    var list = hunks();
    if (!list.length) return;
    var i = currentIndex(list);
    var next = i < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, i + step));
    list[next].focus();
    list[next].scrollIntoView({ block: "center" });
    if (history.replaceState) history.replaceState(null, "", "#" + list[next].id);
  }

  document.addEventListener("keydown", function (e) {
    var body = document.getElementById("instructions-body");
    if (body && e.target === body && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      body.form.requestSubmit();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "n" || e.key === "j") { e.preventDefault(); move(1); }
    else if (e.key === "p" || e.key === "k") { e.preventDefault(); move(-1); }
  });
})();

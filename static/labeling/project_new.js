// New-project page: the slug follows the name (as Django's slugify makes it) until the slug is
// edited by hand; Ctrl+Enter (or Cmd+Enter) in a text area submits. No inline script (CSP).
(function () {
  "use strict";

  var SLUG_MAX = 80;

  function slugify(text) {
    return text.normalize("NFKD").replace(/[^\x00-\x7f]/g, "").toLowerCase()
      .replace(/[^\w\s-]/g, "").replace(/[-\s]+/g, "-").replace(/^[-_]+|[-_]+$/g, "")
      .slice(0, SLUG_MAX).replace(/[-_]+$/, "");
  }

  function init() {
    var form = document.getElementById("project-new-form");
    var name = document.getElementById("id_name");
    var slug = document.getElementById("id_slug");
    if (!form || !name || !slug) return;
    // A slug typed by hand (or kept from a submitted form) is never overwritten.
    var following = slug.value === "" || slug.value === slugify(name.value);
    name.addEventListener("input", function () {
      if (following) slug.value = slugify(name.value);
    });
    slug.addEventListener("input", function () {
      following = slug.value === "";  // emptied: follow the name again from its next change
    });
    form.addEventListener("keydown", function (e) {
      if (e.target.tagName === "TEXTAREA" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// Import page: a file over the size limit is refused as soon as it is chosen, before it is uploaded
// (the server checks again before parsing). No inline script anywhere (CSP).
(function () {
  "use strict";

  document.addEventListener("change", function (e) {
    var input = e.target;
    if (!input || input.type !== "file" || !input.form || input.form.id !== "import-upload") return;
    var notice = document.getElementById("import-file-too-large");
    var limit = notice ? parseInt(notice.getAttribute("data-max-bytes"), 10) : 0;
    var file = input.files && input.files[0];
    var message = "";
    if (file && limit && file.size > limit) {
      message = "The file is " + file.size + " bytes; imports are limited to " + limit +
        " bytes (IMPORT_MAX_BYTES). Split it into smaller files.";
    }
    input.setCustomValidity(message);
    if (notice) {
      notice.textContent = message;
      notice.hidden = !message;
    }
  });
})();

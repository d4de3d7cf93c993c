// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // After a failed submit, move focus to the error summary so screen readers announce it.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }

  // Show the number format of the chosen document type under the number field.
  var type = document.getElementById("document_type");
  var hint = document.getElementById("document_number-hint");
  if (type && hint) {
    type.addEventListener("change", function () {
      var option = type.options[type.selectedIndex];
      if (option && option.dataset.hint) {
        hint.textContent = option.dataset.hint;
      }
    });
  }

  // Links in the error summary: focus the field itself, not just scroll to it.
  if (summary) {
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      if (!link) return;
      var field = document.getElementById(link.getAttribute("href").slice(1));
      if (field) {
        event.preventDefault();
        field.scrollIntoView({ block: "center" });
        field.focus();
      }
    });
  }
})();

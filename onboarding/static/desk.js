// Small conveniences only; every page works without JavaScript.
(function () {
  "use strict";
  // Filter selects apply at once.
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.requestSubmit(); });
  });
  // "/" focuses the search box.
  var search = document.querySelector("[data-shortcut='/']");
  if (search) {
    document.addEventListener("keydown", function (event) {
      var tag = (event.target.tagName || "").toLowerCase();
      if (event.key === "/" && tag !== "input" && tag !== "textarea" && tag !== "select") {
        event.preventDefault();
        search.focus();
        search.select();
      }
    });
  }
  // Confirmation before irreversible actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
  // A form is sent once, even on a double click.
  document.querySelectorAll("form[method='post']").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (event.defaultPrevented) { return; }
      form.querySelectorAll("button[type='submit']").forEach(function (b) { b.disabled = true; });
    });
  });
  // Copy the new API token.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.querySelector(button.dataset.copy);
      input.select();
      if (navigator.clipboard) { navigator.clipboard.writeText(input.value); } else { document.execCommand("copy"); }
      button.textContent = "Copiado";
    });
  });
})();
// Coming back with the browser's back button: buttons are usable again.
window.addEventListener("pageshow", function (event) {
  if (event.persisted) {
    document.querySelectorAll("form[method='post'] button[disabled]").forEach(function (b) { b.disabled = false; });
  }
});

// The console's script: draws each diagram with the app's own copy of Mermaid (its text
// sits in a data attribute, so no inline script is needed), again after a live update
// swaps a part of the page; checks JSON fields as they are typed; and puts a refused
// form's first refused field in focus.
(function () {
  "use strict";

  var drawn = 0;
  var refused = null;

  function drawDiagrams(root) {
    if (!window.mermaid) {
      return;
    }
    var targets = root.querySelectorAll(".mermaid-target[data-diagram]");
    targets.forEach(function (target) {
      var source = target.getAttribute("data-diagram");
      drawn += 1;
      window.mermaid
        .render("diagram-" + drawn, source)
        .then(function (result) {
          target.innerHTML = result.svg;
          if (refused) {
            // A diagram drawn above a refused field pushes it down: bring it back.
            refused.scrollIntoView({ block: "center" });
          }
        })
        .catch(function (error) {
          target.textContent = "The diagram could not be drawn: " + error;
        });
    });
  }

  function checkJson(field) {
    var text = field.value.trim();
    var message = "";
    if (text) {
      try {
        JSON.parse(text);
      } catch (error) {
        message = "not valid JSON: " + error.message;
      }
    }
    field.setCustomValidity(message);
    field.setAttribute("aria-invalid", message ? "true" : "false");
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (window.mermaid) {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
    }
    drawDiagrams(document);
    // A refused form comes back with its first refused field in focus, and so in view.
    refused = document.querySelector(
      ".field.invalid input, .field.invalid textarea, .field.invalid select"
    );
    if (refused) {
      refused.focus();
    }
    document.querySelectorAll("textarea[data-json-field]").forEach(function (field) {
      field.addEventListener("input", function () {
        checkJson(field);
      });
    });
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    drawDiagrams(event.target.parentElement || document);
  });
})();

// Merge review keys: j/k move between rows, x selects, o/Enter opens the pair, a approves, r rejects,
// / goes to the filters, n to the note. Keys typed into a field are left alone. Rows are looked up
// at each key press, so rows swapped in by htmx work without rebinding.
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr.review-row"));
  }

  function currentRow() {
    var active = document.activeElement;
    var row = active && active.closest ? active.closest(".review-row") : null;
    return row || document.querySelector("[data-review-single]");
  }

  function press(row, key) {
    var control = row && row.querySelector('[data-key="' + key + '"]');
    if (!control) return false;
    if (key === "open" && control.href) {
      window.location.assign(control.href);
    } else if (key === "note") {
      control.focus();
    } else {
      control.click();
    }
    return true;
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var index = all.indexOf(currentRow());
    var next = index < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, index + step));
    all[next].focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var handled = true;
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "x": handled = press(currentRow(), "select"); break;
      case "a": handled = press(currentRow(), "approve"); break;
      case "r": handled = press(currentRow(), "reject"); break;
      case "n": handled = press(currentRow(), "note"); break;
      case "o": handled = press(currentRow(), "open"); break;
      case "Enter":
        // Enter on a focused row (not on a button or link inside it) opens the pair.
        handled = target && target.classList && target.classList.contains("review-row") && press(target, "open");
        break;
      case "/": {
        var field = document.querySelector(".review-filters select, .review-filters input");
        handled = Boolean(field);
        if (field) field.focus();
        break;
      }
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });
})();

/* Revenue Control Tower: the little the server cannot do. No framework; htmx does the rest.
   - a "select all" box ticks every row box of its name on the page (rows swapped in by htmx too);
   - keys on lists: "/" search, "j"/"k" next/previous row, "x" tick the row, "o" open it. */
(function () {
  "use strict";
  document.addEventListener("change", function (ev) {
    var all = ev.target.closest("[data-select-all]");
    if (!all) return;
    var name = all.getAttribute("data-select-all");
    document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("table.grid tbody tr[id]"));
  }
  function current() {
    return document.activeElement && document.activeElement.closest("table.grid tbody tr[id]");
  }
  function focusRow(row) {
    if (!row) return;
    var target = row.querySelector("a, input, button");
    if (target) target.focus();
    row.scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") {
      if (ev.key === "Escape") ev.target.blur();
      return;
    }
    var list = rows();
    var row = current();
    var i = row ? list.indexOf(row) : -1;
    if (ev.key === "/") {
      var search = document.querySelector(".filters input[type=search]");
      if (search) { ev.preventDefault(); search.focus(); }
    } else if (ev.key === "j") {
      focusRow(list[Math.min(i + 1, list.length - 1)]);
    } else if (ev.key === "k") {
      focusRow(list[Math.max(i - 1, 0)]);
    } else if (ev.key === "x" && row) {
      var box = row.querySelector("input[type=checkbox]");
      if (box) box.checked = !box.checked;
    } else if (ev.key === "o" && row) {
      var link = row.querySelector("td.key a, a");
      if (link) link.click();
    }
  });
})();

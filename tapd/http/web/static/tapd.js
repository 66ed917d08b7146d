// tapd's web pages: small enhancements; every page works without this script.
"use strict";

// Copy buttons: data-copy names the element whose text is copied.
function setUpCopyButtons() {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent).then(function () {
        button.textContent = "Copied";
      });
    });
  });
}

// Tables page: filter while typing (the form's GET does the same without script).
function setUpTableFilter() {
  var input = document.querySelector("input[data-filter='table']");
  if (!input) return;
  var count = document.getElementById("filter-count");
  var tables = Array.prototype.slice.call(document.querySelectorAll("details[data-search]"));
  function apply() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    tables.forEach(function (table) {
      var text = table.dataset.search;
      var match = words.every(function (w) { return text.indexOf(w) >= 0; });
      table.hidden = !match;
      if (match) shown += 1;
    });
    document.querySelectorAll("section.schema").forEach(function (schema) {
      schema.hidden = !schema.querySelector("details[data-search]:not([hidden])");
    });
    if (count) count.textContent = shown + " of " + tables.length + " tables shown";
  }
  input.addEventListener("input", apply);
}

// Query form: choosing an example fills the form at once; an ADQL error puts the
// cursor where the checker found it.
function setUpQueryForm() {
  var textarea = document.getElementById("adql");
  if (!textarea) return;
  var line = parseInt(textarea.dataset.errorLine || "", 10);
  var column = parseInt(textarea.dataset.errorColumn || "", 10);
  if (line > 0 && column > 0) {
    var lines = textarea.value.split("\n");
    var offset = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += column - 1;
    textarea.focus();
    textarea.setSelectionRange(offset, offset + 1);
  }
  var choice = document.getElementById("example-choice");
  if (choice) {
    choice.addEventListener("change", function () {
      // Loading through the form's GET keeps the example's upload table with it.
      choice.form.submit();
    });
  }
}

// Job page: follow the phase through the UWS job resource's WAIT, which blocks on the
// server until the phase changes (or wait_max passes); reload the content on a change.
function setUpJobPage() {
  var main = document.getElementById("main");
  if (!main || !main.dataset.job || !main.dataset.active || !window.fetch) return;
  var jobUrl = main.dataset.job;
  var phase = main.dataset.phase;
  var waitLink = document.getElementById("wait-link");
  if (waitLink) waitLink.hidden = true;
  var failures = 0;

  function refresh() {
    return fetch(window.location.pathname, { headers: { Accept: "text/html" } })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("main");
        if (!fresh) return false;
        main.innerHTML = fresh.innerHTML;
        main.dataset.phase = fresh.dataset.phase;
        phase = fresh.dataset.phase;
        var stillActive = fresh.dataset.active === "true";
        if (!stillActive) delete main.dataset.active;
        var link = document.getElementById("wait-link");
        if (link) link.hidden = true;
        return stillActive;
      });
  }

  function follow() {
    var started = Date.now();
    var url = jobUrl + "?WAIT=-1&PHASE=" + encodeURIComponent(phase);
    fetch(url, { headers: { Accept: "application/xml" }, cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (xml) {
        failures = 0;
        var doc = new DOMParser().parseFromString(xml, "application/xml");
        var node = doc.getElementsByTagNameNS("http://www.ivoa.net/xml/UWS/v1.0", "phase")[0];
        var now = node ? node.textContent.trim() : phase;
        if (now !== phase) return refresh();
        // Same phase: WAIT held the request for wait_max; never ask faster than once a second.
        return new Promise(function (done) {
          setTimeout(function () { done(true); }, Math.max(0, 1000 - (Date.now() - started)));
        });
      })
      .then(function (again) { if (again) follow(); })
      .catch(function () {
        failures += 1;
        // The service is unreachable: back off (2, 4, ... 60 s) instead of hammering it.
        setTimeout(follow, Math.min(60000, 1000 * Math.pow(2, failures)));
      });
  }
  follow();
}

document.addEventListener("DOMContentLoaded", function () {
  setUpCopyButtons();
  setUpTableFilter();
  setUpQueryForm();
  setUpJobPage();
});

// The run page, live: follows /runs/{id}/events (Server-Sent Events) and applies each new
// journal record to the page without a reload: the step's state in the table and the graph,
// the run's status, the journal's rows, the output kept. Text from the journal reaches the
// page only as text (textContent, never markup: tests/tidy.rs forbids the other ways).
// Without this script the page is whole: a reload shows the same state.
(function () {
  "use strict";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  // The output's lines one per element (a filter hides lines, not blank lines).
  function asLines(pre) {
    var kids = Array.prototype.slice.call(pre.childNodes);
    kids.forEach(function (n) {
      if (n.nodeType === 3 && n.nodeValue === "\n") { pre.removeChild(n); }
    });
    pre.classList.add("lines");
  }

  // The search box: hides the lines of every output that do not contain its text.
  function filter() {
    var box = document.getElementById("output-search");
    var q = box ? box.value.toLowerCase() : "";
    var spans = document.querySelectorAll("section.log pre.lines span");
    Array.prototype.forEach.call(spans, function (s) {
      s.hidden = q !== "" && s.textContent.toLowerCase().indexOf(q) < 0;
    });
  }

  function stepRow(step) {
    var links = document.querySelectorAll("table.steps tbody tr td:first-child a");
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute("href") === "#out-" + step) { return links[i].closest("tr"); }
    }
    return null;
  }

  function graphNode(step) {
    var titles = document.querySelectorAll("div.graph g.node > title");
    for (var i = 0; i < titles.length; i++) {
      var t = titles[i].textContent;
      var cut = t.lastIndexOf(": ");
      if (cut >= 0 && t.slice(0, cut) === step) { return titles[i].parentNode; }
    }
    return null;
  }

  function setStep(step, status) {
    var row = stepRow(step);
    if (!row) {
      var body = document.querySelector("table.steps tbody");
      if (!body) { return; }
      row = el("tr");
      var first = el("td");
      var a = el("a", null, step);
      a.setAttribute("href", "#out-" + step);
      first.appendChild(a);
      row.appendChild(first);
      row.appendChild(el("td", "state"));
      for (var i = 0; i < 4; i++) { row.appendChild(el("td", null, "-")); }
      body.appendChild(row);
    }
    row.className = "s-" + status;
    var cell = row.querySelector("td.state");
    if (cell) { cell.textContent = status; }
    var node = graphNode(step);
    if (node) {
      node.setAttribute("class", "node s-" + status);
      var title = node.querySelector("title");
      if (title) { title.textContent = step + ": " + status; }
    }
  }

  function addRecord(d) {
    var body = document.querySelector("table.journal tbody");
    if (!body) { return; }
    var row = el("tr");
    [d.seq, d.ts, d.kind, d.step || "", ""].forEach(function (v, i) {
      var td = el("td");
      if (i === 4) { td.appendChild(el("code", null, d.hash || "")); } else { td.textContent = String(v); }
      row.appendChild(td);
    });
    body.appendChild(row);
  }

  // Live output (issue 16): by attempt, the bytes seen; attempts whose log is kept.
  var liveSeen = {};
  var keptSet = {};
  function liveKey(step, attempt) { return step + "\u0000" + attempt; }
  function liveSection(step, attempt) {
    var secs = document.querySelectorAll("section.log.live");
    for (var i = 0; i < secs.length; i++) {
      if (secs[i].getAttribute("data-step") === step && secs[i].getAttribute("data-attempt") === String(attempt)) { return secs[i]; }
    }
    return null;
  }

  // A `live` event: new lines of an attempt's output, not vouched for by the journal.
  function addLive(d) {
    var key = liveKey(d.step, d.attempt);
    if (keptSet[key]) { return; }
    var known = liveSeen[key];
    if (known !== undefined && d.seen <= known) { return; }
    var sec = liveSection(d.step, d.attempt);
    var into = document.getElementById("live-output");
    if (!sec) {
      if (!into) { return; }
      sec = el("section", "log live");
      sec.setAttribute("data-step", d.step);
      sec.setAttribute("data-attempt", String(d.attempt));
      sec.appendChild(el("h3", null, d.step + " (attempt " + d.attempt + ")"));
      sec.appendChild(el("p", "label", d.label));
      sec.appendChild(el("pre", "lines"));
      into.appendChild(sec);
    }
    var pre = sec.querySelector("pre");
    if (!pre) { return; }
    if (d.from === 0 || known === undefined) {
      while (pre.firstChild) { pre.removeChild(pre.firstChild); }
    }
    if (d.omitted > 0) { pre.appendChild(el("span", "more", "[" + d.omitted + " more bytes not shown]")); }
    (d.lines || []).forEach(function (l) { pre.appendChild(el("span", l[0] === "err" ? "err" : "out", l[1])); });
    liveSeen[key] = d.seen;
    filter();
  }

  function addOutput(o) {
    var into = document.getElementById("live-output");
    if (!into) { return; }
    var key = liveKey(o.step, o.attempt);
    keptSet[key] = true;
    var old = liveSection(o.step, o.attempt);
    if (old) { old.parentNode.removeChild(old); }
    var none = document.getElementById("no-output");
    if (none) { none.hidden = true; }
    var sec = el("section", "log");
    sec.id = "out-" + o.step;
    sec.appendChild(el("h3", null, o.step + " (attempt " + o.attempt + ")"));
    sec.appendChild(el("p", "label", o.label));
    if (o.omitted > 0) {
      sec.appendChild(el("p", "more", o.omitted + " more bytes before these lines: runbook logs prints them all."));
    }
    var pre = el("pre", "lines");
    o.lines.forEach(function (l) { pre.appendChild(el("span", l[0] === "err" ? "err" : "out", l[1])); });
    sec.appendChild(pre);
    into.appendChild(sec);
    filter();
  }

  function start() {
    var live = document.getElementById("live");
    if (!live || typeof EventSource === "undefined") { return; }
    Array.prototype.forEach.call(document.querySelectorAll("section.log pre"), asLines);
    var box = document.getElementById("output-search");
    if (box) {
      box.addEventListener("input", filter);
      var form = box.form;
      if (form) { form.addEventListener("submit", function (e) { e.preventDefault(); filter(); }); }
    }
    if (live.getAttribute("data-finished") === "yes") { return; }
    var run = live.getAttribute("data-run");
    var after = live.getAttribute("data-after") || "0";
    var source = new EventSource("/runs/" + encodeURIComponent(run) + "/events?after=" + encodeURIComponent(after));
    live.textContent = "Following the run live.";
    source.addEventListener("record", function (m) {
      var d = JSON.parse(m.data);
      if (d.step && d.status) { setStep(d.step, d.status); }
      if (d.run_status) {
        var st = document.querySelector("table.facts td.status");
        if (st) { st.textContent = d.run_status; }
      }
      addRecord(d);
      if (d.output) { addOutput(d.output); }
      live.textContent = "Following the run live: record " + d.seq + ".";
    });
    source.addEventListener("live", function (m) { addLive(JSON.parse(m.data)); });
    source.addEventListener("end", function (m) {
      var d = JSON.parse(m.data);
      live.textContent = d.reason + ". Reload for the whole page.";
      source.close();
    });
    source.onerror = function () {
      live.textContent = "Connection lost: reconnecting (the page resumes where it stopped).";
    };
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

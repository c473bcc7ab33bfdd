/* The catalogue page searches as you type: GET /api/catalogue/?q=&kind= (the same read as the page), the rows
 * rebuilt with textContent only (names and descriptions come from servers). The form still works without it. */
(function () {
  "use strict";

  var form = document.getElementById("catalogue-search");
  var rows = document.getElementById("catalogue-rows");
  if (!form || !rows) return;
  var count = document.getElementById("catalogue-count");
  var pager = document.getElementById("catalogue-pager");
  var PAGE = 50;
  var ANCHORS = { tool: "tools", resource: "resources", resource_template: "resource-templates", prompt: "prompts" };
  var latest = 0; // only the newest answer is drawn
  var timer = null;

  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function draw(page, query) {
    rows.textContent = "";
    page.results.forEach(function (entry) {
      var row = node("tr");
      row.dataset.entry = entry.kind + ":" + entry.name;
      var name = node("td");
      name.appendChild(node("code", "cap-name", entry.name));
      if (entry.title) name.appendChild(node("span", "subtle", " " + entry.title));
      var kind = node("td");
      kind.appendChild(node("span", "kind kind-" + entry.kind, entry.kind_label || entry.kind));
      var description = node("td", "description", entry.description.length > 300 ? entry.description.slice(0, 299) + "…" : entry.description);
      var offered = node("td", "offered-by");
      entry.servers.forEach(function (server) {
        var link = node("a", "offer");
        link.href = "/servers/" + encodeURIComponent(server.name) + "/" + (ANCHORS[entry.kind] ? "#" + ANCHORS[entry.kind] : "");
        link.appendChild(node("span", "badge status-" + server.status, server.status));
        link.appendChild(document.createTextNode(" " + server.name));
        offered.appendChild(link);
      });
      row.append(name, kind, description, offered);
      rows.appendChild(row);
    });
    if (!page.results.length) {
      var empty = node("tr", "empty-row");
      var cell = node("td", "", "Nothing in the fleet matches.");
      cell.colSpan = 4;
      empty.appendChild(cell);
      rows.appendChild(empty);
    }
    if (count) {
      var text = page.count + (page.count === 1 ? " entry" : " entries") + (query ? " matching “" + query + "”" : "");
      if (page.count > PAGE) text += " · the first " + PAGE + " shown: press Search for pages";
      count.textContent = text;
    }
    if (pager) pager.hidden = true; // the pager belongs to the server-rendered search
  }

  function search() {
    var query = form.elements.q.value.trim();
    var kind = form.elements.kind.value;
    var params = new URLSearchParams({ limit: String(PAGE) });
    if (query) params.set("q", query);
    if (kind) params.set("kind", kind);
    var ticket = ++latest;
    window.OrchestratorDom.getJSON(form.dataset.api + "?" + params.toString())
      .then(function (page) {
        if (ticket !== latest) return;
        draw(page, query);
        var url = new URL(window.location.href);
        url.search = "";
        if (query) url.searchParams.set("q", query);
        if (kind) url.searchParams.set("kind", kind);
        window.history.replaceState(null, "", url.toString());
      })
      .catch(function (error) {
        if (ticket === latest && count) count.textContent = "Could not search: " + error.message;
      });
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(search, 200);
  }

  document.addEventListener("DOMContentLoaded", function () {
    form.elements.q.addEventListener("input", soon);
    form.elements.kind.addEventListener("change", search);
  });
})();

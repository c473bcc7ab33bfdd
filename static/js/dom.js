/* Small helpers every page script shares: JSON from the API, table cells, the CSRF token of the page, chart text. */
(function () {
  "use strict";

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  // A table cell with text ("–" for nothing) and an optional class.
  function td(text, className) {
    var cell = document.createElement("td");
    cell.textContent = text === null || text === undefined ? "–" : text;
    if (className) cell.className = className;
    return cell;
  }

  // Pages that post put a {% csrf_token %} in a hidden form #csrf-holder.
  function csrfToken() {
    var input = document.querySelector("#csrf-holder input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  // POST a JSON body with the page's CSRF token; resolves to {status, json} whatever the status.
  function postJSON(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(function (json) { return { status: r.status, json: json }; });
    });
  }

  // Plotly reads every string it draws (trace names, hover text, tick labels, titles) as HTML-like markup: <b>, <i>,
  // <a href>, <br>, entities. Text that comes from servers goes through this first, so it shows as written and a
  // hostile server cannot style a label or plant a link in it. Plotly decodes &amp; &lt; &gt; and numeric entities.
  var PLOT_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;" };
  function plotText(value) {
    if (value === null || value === undefined) return "";
    return String(value).replace(/[&<>"']/g, function (c) { return PLOT_ESCAPES[c]; });
  }

  window.OrchestratorDom = { getJSON: getJSON, td: td, csrfToken: csrfToken, postJSON: postJSON, plotText: plotText };
})();

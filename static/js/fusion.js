/* The fusion page: ask (POST /api/fusion/query/), show the fused value, each source, the explanation and a Plotly
 * chart of the inputs with the fused value and its band; recent runs and trust, live from the stream fusion.runs.
 */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;
  var getJSON = dom.getJSON, td = dom.td, postJSON = dom.postJSON, plotText = dom.plotText;

  function short(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") return String(Math.round(value * 10000) / 10000);
    var text = JSON.stringify(value, function (key, v) {
      return typeof v === "number" ? Math.round(v * 10000) / 10000 : v;
    });
    return text.length > 160 ? text.slice(0, 157) + "…" : text;
  }
  function renderSources(form) {
    var select = form.querySelector("select[name=tool]");
    var box = document.getElementById("source-choices");
    var option = select.options[select.selectedIndex];
    box.textContent = "";
    (option ? option.dataset.servers.split(",") : []).forEach(function (server) {
      var label = document.createElement("label");
      var input = document.createElement("input");
      input.type = "checkbox";
      input.name = "servers";
      input.value = server;
      input.checked = true;
      label.appendChild(input);
      label.appendChild(document.createTextNode(server));
      box.appendChild(label);
    });
  }

  function showError(message) {
    var box = document.getElementById("fusion-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function errorText(body) {
    if (!body || typeof body !== "object") return "The request failed.";
    return Object.keys(body).map(function (field) {
      var messages = body[field];
      return field + ": " + (Array.isArray(messages) ? messages.join(" ") : JSON.stringify(messages));
    }).join(" · ");
  }

  function chart(answer) {
    if (!window.Plotly) return;
    var names = Object.keys(answer.fields || {});
    var field = names.filter(function (name) { return answer.fields[name].interval; })[0];
    var target = document.getElementById("fusion-chart");
    if (!field) { target.hidden = true; return; }
    target.hidden = false;
    var pick = function (row) {
      if (row.value === null || row.value === undefined) return null;
      return typeof row.value === "object" ? row.value[field] : row.value;
    };
    var rows = answer.sources.filter(function (row) { return typeof pick(row) === "number"; });
    var figures = answer.fields[field];
    var colors = { used: "#1f9d55", excluded: "#d97706" };
    Plotly.react(target, [{
      x: rows.map(function (row) { return plotText(row.server); }), y: rows.map(pick), mode: "markers", type: "scatter",
      marker: { size: 11, color: rows.map(function (row) { return colors[row.state] || "#d64545"; }) },
      text: rows.map(function (row) { return plotText(row.state + (row.reason ? ": " + row.reason : "")); }),
      name: plotText(field),
    }], {
      margin: { t: 10, r: 10, b: 40, l: 70 }, showlegend: false,
      yaxis: { title: { text: plotText(field) }, tickformat: ",.6~g" },
      shapes: [
        { type: "rect", xref: "paper", x0: 0, x1: 1, y0: figures.interval[0], y1: figures.interval[1],
          fillcolor: "rgba(37,99,235,0.12)", line: { width: 0 } },
        { type: "line", xref: "paper", x0: 0, x1: 1, y0: figures.value, y1: figures.value,
          line: { color: "rgba(37,99,235,0.9)", dash: "dash" } },
      ],
    }, { responsive: true, displayModeBar: false });
  }

  function showAnswer(answer) {
    document.getElementById("fusion-result").hidden = false;
    document.getElementById("result-run").textContent = "run #" + answer.run_id + (answer.cached ? " (from the cache)" : "") +
      (answer.shared ? " (shared with a concurrent identical query)" : "");
    var summary = document.getElementById("result-summary");
    summary.textContent = answer.error
      ? "No answer: " + answer.error
      : short(answer.value) + " · confidence " + (answer.confidence !== null ? Math.round(answer.confidence * 100) + " %" : "–") +
        " · " + answer.strategy + " · " + answer.valid_answers + " valid of " + answer.sources.length + " · " +
        answer.duration_ms + " ms";
    summary.className = answer.error ? "field-error" : "";
    var body = document.getElementById("source-rows");
    body.textContent = "";
    answer.sources.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.dataset.server = row.server;
      tr.appendChild(td(row.server));
      var state = td("");
      var badge = document.createElement("span");
      badge.className = "badge state-" + row.state;
      badge.textContent = row.state.replace("_", " ");
      state.appendChild(badge);
      tr.appendChild(state);
      tr.appendChild(td(short(row.value), "value-cell"));
      tr.appendChild(td(row.latency_ms !== null ? row.latency_ms.toFixed(1) : null, "num"));
      tr.appendChild(td(row.age_ms !== null ? Math.round(row.age_ms) : null, "num col-wide"));
      tr.appendChild(td(row.weight ? row.weight.weight.toFixed(3) : null, "num col-wide"));
      tr.appendChild(td(row.reason || "", "reason-cell"));
      body.appendChild(tr);
    });
    chart(answer);
    getJSON("/api/fusion/runs/" + answer.run_id + "/").then(function (run) {
      document.getElementById("explanation").textContent = JSON.stringify(run.explanation, null, 2);
    }).catch(function () {});
  }

  function ask(form) {
    var data = new FormData(form);
    var body = {
      tool: data.get("tool"),
      servers: data.getAll("servers"),
      strategy: data.get("strategy"),
      fields: String(data.get("fields") || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean),
      quorum: parseInt(data.get("quorum"), 10),
      timeout_seconds: parseFloat(data.get("timeout_seconds")),
      deadline_seconds: parseFloat(data.get("deadline_seconds")),
      cache_ttl_seconds: parseFloat(data.get("cache_ttl_seconds")),
    };
    try {
      body.arguments = JSON.parse(data.get("arguments") || "{}");
    } catch (e) {
      showError("arguments: not valid JSON (" + e.message + ")");
      return;
    }
    showError("");
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    postJSON("/api/fusion/query/", body).then(function (reply) {
      if (reply.status === 200 || (reply.status === 502 && reply.json.run_id)) showAnswer(reply.json);
      else showError(errorText(reply.json));
    }).catch(function (e) { showError("The request failed: " + e.message); })
      .then(function () { button.disabled = false; });
  }

  function renderRuns(page) {
    var body = document.getElementById("run-rows");
    body.textContent = "";
    page.results.forEach(function (run) {
      var tr = document.createElement("tr");
      tr.dataset.run = run.run_id;
      tr.appendChild(td(run.created_at.slice(11, 19)));
      tr.appendChild(td((run.tool || run.resource) + ""));
      tr.appendChild(td(run.strategy));
      tr.appendChild(td(run.error ? "✕ " + run.error : short(run.value), "value-cell"));
      tr.appendChild(td(run.confidence !== null ? Math.round(run.confidence * 100) + " %" : null, "num"));
      var used = run.sources.filter(function (s) { return s.state === "used"; }).length;
      tr.appendChild(td(used + "/" + run.sources.length, "num col-wide"));
      tr.appendChild(td(Math.round(run.duration_ms), "num col-wide"));
      tr.style.cursor = "pointer";
      tr.addEventListener("click", function () { showAnswer(run); });
      body.appendChild(tr);
    });
    var stats = page.statistics;
    if (stats) {
      document.getElementById("run-stats").textContent = stats.runs + " runs · " + stats.quorum_met + " with quorum · p95 " +
        (stats.p95_duration_ms !== null ? Math.round(stats.p95_duration_ms) : "–") + " ms · cache " + stats.cache.hits +
        " hits / " + stats.cache.misses + " misses";
    }
  }

  function renderTrust(body) {
    var rows = document.getElementById("trust-rows");
    rows.textContent = "";
    body.results.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.appendChild(td(row.server));
      tr.appendChild(td(row.subject));
      tr.appendChild(td(row.score.toFixed(3), "num"));
      tr.appendChild(td(row.agreements + "/" + row.observations, "num"));
      rows.appendChild(tr);
    });
  }

  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    Promise.all([getJSON("/api/fusion/runs/?limit=15"), getJSON("/api/fusion/trust/")])
      .then(function (both) { renderRuns(both[0]); renderTrust(both[1]); })
      .catch(function () {})
      .then(function () { busy = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("fusion-form");
    if (form) {
      renderSources(form);
      form.querySelector("select[name=tool]").addEventListener("change", function () { renderSources(form); });
      form.addEventListener("submit", function (event) { event.preventDefault(); ask(form); });
      form.querySelector("button[type=submit]").disabled = false;
    }
    refresh();
    window.setInterval(refresh, 15000);
    if (window.OrchestratorEvents) {
      window.OrchestratorEvents.connect({ streams: ["fusion.runs"], onEvent: refresh });
    }
  });
})();

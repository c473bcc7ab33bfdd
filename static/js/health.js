/* The health pages. Fleet page: GET /api/health/ every 5 s, and every check live from the pipeline
 * (stream health.checks). Server page: the server's samples of the last hour as Plotly charts (latency with its
 * trend line and prediction band, availability per minute, check results), refreshed every 5 s and on every check.
 */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;
  var getJSON = dom.getJSON, td = dom.td, csrfToken = dom.csrfToken, plotText = dom.plotText;

  var LABELS = { online: "Online", degraded: "Degraded", pending: "Pending", unhealthy: "Unhealthy",
    offline: "Offline", maintenance: "Maintenance", unknown: "Unknown", disabled: "Disabled" };

  function percent(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(value >= 0.9995 ? 1 : 2) + " %";
  }
  function ms(value) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(1);
  }
  function badge(status, reason) {
    var span = document.createElement("span");
    span.className = "badge status-" + status;
    span.textContent = LABELS[status] || status;
    if (reason) span.title = reason;
    return span;
  }
  function trendText(trend) {
    if (!trend) return "–";
    var arrow = trend.direction === "degrading" ? "↗" : trend.direction === "improving" ? "↘" : "→";
    return arrow + " " + trend.direction + " (" + trend.slope_ms_per_hour.toFixed(1) + " ms/h, " +
      Math.round(trend.confidence * 100) + " %)";
  }
  function predictionText(prediction) {
    if (!prediction) return "–";
    return "reaches " + prediction.threshold + " ms around " + new Date(prediction.at).toLocaleTimeString() +
      " (from " + new Date(prediction.earliest).toLocaleTimeString() + ")";
  }

  // -- fleet page ---------------------------------------------------------------------------------------------
  var lastChecks = {};

  function renderFleet(body) {
    var rows = document.getElementById("health-rows");
    rows.textContent = "";
    body.results.forEach(function (server) {
      var tr = document.createElement("tr");
      tr.dataset.server = server.server;
      var name = document.createElement("td");
      var link = document.createElement("a");
      link.href = "/health/" + encodeURIComponent(server.server) + "/";
      link.textContent = server.server;
      name.appendChild(link);
      tr.appendChild(name);
      var status = document.createElement("td");
      status.appendChild(badge(server.status, server.status_reason));
      tr.appendChild(status);
      tr.appendChild(td(percent(server.availability["24h"]), "num"));
      tr.appendChild(td(percent(server.availability["7d"]), "num col-wide"));
      tr.appendChild(td(percent(server.availability["30d"]), "num col-wide"));
      tr.appendChild(td(ms(server.latency_ms.p50), "num col-wide"));
      tr.appendChild(td(ms(server.latency_ms.p95), "num"));
      tr.appendChild(td(ms(server.latency_ms.p99), "num col-wide"));
      tr.appendChild(td(percent(server.success_rate), "num col-wide"));
      tr.appendChild(td(trendText(server.trend)));
      tr.appendChild(td(predictionText(server.prediction), "col-wide"));
      var check = lastChecks[server.server];
      tr.appendChild(td(check ? (check.ok ? "ok " : "failed ") + (check.detail || check.error || "") : "–",
        "col-wide last-check"));
      rows.appendChild(tr);
    });
  }

  // The alert card is static/js/alert_list.js's.

  function fleetPage() {
    function load() {
      getJSON("/api/health/").then(renderFleet).catch(function () {});
    }
    load();
    window.setInterval(load, 5000);
    window.OrchestratorEvents.connect({
      streams: ["health.checks"],
      onEvent: function (event) {
        lastChecks[event.payload.server] = event.payload;
        var cell = document.querySelector('tr[data-server="' + event.payload.server + '"] .last-check');
        if (cell) cell.textContent = (event.payload.ok ? "ok " : "failed ") + (event.payload.detail || event.payload.error || "");
      },
    });
  }

  // -- server page ---------------------------------------------------------------------------------------------
  // The server page's health section has fewer charts than the health page: draw those that are there.
  function plot(id, traces, layout, config) {
    if (document.getElementById(id)) Plotly.react(id, traces, layout, config);
  }

  function serverPage(summary) {
    var name = summary.dataset.server;
    var busy = false;

    function draw(health, samples) {
      summary.textContent = "";
      summary.appendChild(badge(health.status, health.status_reason));
      summary.appendChild(document.createTextNode(
        " " + health.status_reason + " · availability 24 h " + percent(health.availability["24h"]) +
        " · p95 " + ms(health.latency_ms.p95) + " ms · trend " + trendText(health.trend) +
        (health.prediction ? " · " + predictionText(health.prediction) : "")));
      var probes = samples.results.filter(function (s) { return s.kind === "probe"; });
      var synthetic = samples.results.filter(function (s) { return s.kind === "synthetic"; });
      var ok = function (list) { return list.filter(function (s) { return s.ok && s.latency_ms !== null; }); };
      var traces = [
        { x: ok(probes).map(function (s) { return s.at; }), y: ok(probes).map(function (s) { return s.latency_ms; }),
          name: "probe", mode: "markers", type: "scatter", marker: { size: 4 } },
        { x: ok(synthetic).map(function (s) { return s.at; }), y: ok(synthetic).map(function (s) { return s.latency_ms; }),
          name: "synthetic call", mode: "markers", type: "scatter", marker: { size: 4 } },
      ];
      var layout = { margin: { t: 10, r: 10, b: 30, l: 45 }, yaxis: { title: { text: "ms" }, rangemode: "tozero" },
        legend: { orientation: "h" } };
      if (health.trend && ok(probes).length > 1) {
        // The trend line over the window, from its slope (ms per hour) through the last hour's mean.
        var xs = ok(probes).map(function (s) { return Date.parse(s.at); });
        var ys = ok(probes).map(function (s) { return s.latency_ms; });
        var xm = xs.reduce(function (a, b) { return a + b; }, 0) / xs.length;
        var ym = ys.reduce(function (a, b) { return a + b; }, 0) / ys.length;
        var slope = health.trend.slope_ms_per_hour / 3600000;
        var end = health.prediction ? Date.parse(health.prediction.at) : xs[xs.length - 1];
        traces.push({ x: [new Date(xs[0]), new Date(end)], y: [ym + slope * (xs[0] - xm), ym + slope * (end - xm)],
          name: "trend (" + plotText(health.trend.direction) + ")", mode: "lines", type: "scatter",
          line: { dash: "dot" } });
        if (health.prediction) {
          layout.shapes = [{ type: "rect", xref: "x", yref: "paper", x0: health.prediction.earliest,
            x1: health.prediction.latest || health.prediction.at, y0: 0, y1: 1, fillcolor: "rgba(220,80,60,0.12)",
            line: { width: 0 } }, { type: "line", xref: "paper", x0: 0, x1: 1, y0: health.prediction.threshold,
            y1: health.prediction.threshold, line: { color: "rgba(220,80,60,0.8)", dash: "dash" } }];
        }
      }
      plot("latency-chart", traces, layout, { responsive: true, displayModeBar: false });

      var minutes = {};
      probes.forEach(function (s) {
        if (s.in_maintenance) return;
        var minute = s.at.slice(0, 16);
        minutes[minute] = minutes[minute] || { ok: 0, all: 0 };
        minutes[minute].all += 1;
        if (s.ok) minutes[minute].ok += 1;
      });
      var keys = Object.keys(minutes).sort();
      plot("availability-chart", [{ x: keys.map(function (k) { return k + ":00Z"; }),
        y: keys.map(function (k) { return minutes[k].ok / minutes[k].all; }), type: "bar", name: "availability" }],
        { margin: { t: 10, r: 10, b: 30, l: 45 }, yaxis: { range: [0, 1], tickformat: ".0%" } },
        { responsive: true, displayModeBar: false });

      var all = samples.results.filter(function (s) { return s.kind !== "passive"; });
      plot("timeline-chart", [{ x: all.map(function (s) { return s.at; }),
        y: all.map(function (s) { return s.kind; }), mode: "markers", type: "scatter",
        marker: { color: all.map(function (s) { return s.ok ? "#1f9d55" : "#d64545"; }), size: 7 },
        text: all.map(function (s) {
          return plotText(s.error || (s.latency_ms !== null ? s.latency_ms + " ms" : ""));
        }) }],
        { margin: { t: 10, r: 10, b: 30, l: 70 } }, { responsive: true, displayModeBar: false });

      // The status over time, as steps between its levels (newest change last), up to now.
      var levels = ["offline", "unhealthy", "pending", "degraded", "maintenance", "online"];
      var changes = (health.status_history || []).slice().reverse();
      if (changes.length) {
        var xs = changes.map(function (c) { return c.at; }).concat([new Date().toISOString()]);
        var ys = changes.map(function (c) { return c.to; }).concat([changes[changes.length - 1].to]);
        plot("status-chart", [{ x: xs, y: ys, type: "scatter", mode: "lines+markers", line: { shape: "hv" },
          text: changes.map(function (c) { return plotText(c.reason); }).concat([""]), name: "status" }],
          { margin: { t: 10, r: 10, b: 30, l: 90 }, yaxis: { categoryorder: "array", categoryarray: levels } },
          { responsive: true, displayModeBar: false });
      }

      var body = document.getElementById("tool-rows");
      if (!body) return;
      body.textContent = "";
      (health.tools || []).forEach(function (tool) {
        var tr = document.createElement("tr");
        tr.appendChild(td(tool.tool));
        tr.appendChild(td(tool.calls, "num"));
        tr.appendChild(td(percent(tool.success_rate), "num"));
        tr.appendChild(td(ms(tool.latency_p50_ms), "num"));
        tr.appendChild(td(ms(tool.latency_p95_ms), "num"));
        body.appendChild(tr);
      });
    }

    function load() {
      if (busy || !window.Plotly) return;
      busy = true;
      var since = new Date(Date.now() - 3600000).toISOString();
      Promise.all([getJSON("/api/health/" + encodeURIComponent(name) + "/"),
        getJSON("/api/health/" + encodeURIComponent(name) + "/samples/?limit=5000&since=" + encodeURIComponent(since))])
        .then(function (both) { draw(both[0], both[1]); })
        .catch(function () {})
        .then(function () { busy = false; });
    }
    load();
    window.setInterval(load, 5000);
    window.OrchestratorEvents.connect({ streams: ["health.checks"], servers: [name], onEvent: load });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.OrchestratorEvents) return;
    var summary = document.getElementById("server-health-summary");
    if (summary) serverPage(summary);
    else if (document.getElementById("health-rows")) fleetPage();
  });
})();

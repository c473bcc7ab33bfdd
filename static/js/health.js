/* The health pages. Fleet page: GET /api/health/ every 5 s, and every check live from the pipeline
 * (stream health.checks). Server page: the server's samples of the last hour as Plotly charts (latency with its
 * trend line and prediction band, availability per minute, check results), refreshed every 5 s and on every check.
 * Every figure says what it measures and over what window: the latency is that of what decided the status (the
 * check call when the server has one, else the liveness probe; the API's latency_source), the probe's beside it;
 * a trend from too little data shows the API's reason instead of a direction; an empty chart says "no data yet".
 * Times on the charts are the browser's local time of day (converted here: Plotly shows a date string as written).
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
  function windowText(seconds) {
    if (!seconds) return "";
    return seconds % 3600 === 0 ? seconds / 3600 + " h" : Math.round(seconds / 60) + " min";
  }
  // "check get_quote" or "probe": what a latency figure measures.
  function sourceText(latency) {
    return latency ? latency.label || latency.source || "probe" : "probe";
  }
  function trendText(trend) {
    if (!trend) return "–";
    if (!trend.direction) return trend.reason || "too little data";  // no direction from too little data
    var arrow = trend.direction === "degrading" ? "↗" : trend.direction === "improving" ? "↘" : "→";
    if (trend.direction === "stable") {
      return arrow + " stable (" + (trend.significant ? "slope too small to matter" : "no significant slope") + ")";
    }
    return arrow + " " + trend.direction + " (" + (trend.slope_ms_per_hour > 0 ? "+" : "") +
      trend.slope_ms_per_hour.toFixed(1) + " ms/h)";
  }
  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function bandText(prediction) {
    return Math.round(prediction.band * 100) + " % band " + clock(prediction.earliest) + "–" +
      (prediction.latest ? clock(prediction.latest) : "beyond 24 h");
  }
  function predictionText(health) {
    var prediction = health.prediction;
    if (!prediction) return health.prediction_reason || "–";
    return "reaches " + prediction.threshold + " ms around " + clock(prediction.at) + " (" + bandText(prediction) +
      ") " + prediction.basis;
  }
  // A figure with what it measures under it, in the table: "150.3" over "check get_quote".
  function figureCell(value, label, className) {
    var cell = td(ms(value), className);
    var note = document.createElement("span");
    note.className = "figure-of";
    note.textContent = label;
    cell.appendChild(note);
    return cell;
  }

  // -- fleet page ---------------------------------------------------------------------------------------------
  var lastChecks = {};

  function renderFleet(body) {
    var rows = document.getElementById("health-rows");
    rows.textContent = "";
    var windowNote = document.getElementById("figures-window");
    if (windowNote && body.results.length) {
      windowNote.textContent = windowText(body.results[0].latency_ms.window_seconds);
    }
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
      var of = sourceText(server.latency_ms);
      tr.appendChild(figureCell(server.latency_ms.p50, of, "num col-wide"));
      tr.appendChild(figureCell(server.latency_ms.p95, of, "num"));
      tr.appendChild(td(ms(server.latency_ms.p99), "num col-wide"));
      var probe = server.probe_latency_ms;
      tr.appendChild(probe && server.latency_source === "check" ? td(ms(probe.p50), "num col-wide")
        : td("same", "num col-wide muted"));
      tr.appendChild(td(percent(server.success_rate), "num col-wide"));
      var trend = td(trendText(server.trend), "trend-cell");
      if (server.trend && server.trend.reason) trend.title = server.trend.reason;
      tr.appendChild(trend);
      tr.appendChild(td(predictionText(server), "col-wide"));
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
    var chart = document.getElementById(id);
    if (!chart) return;
    if (chart.classList.contains("chart-is-empty")) {
      chart.textContent = "";
      chart.classList.remove("chart-is-empty");
    }
    Plotly.react(chart, traces, layout, config);
  }
  // An empty chart says so, instead of axes from -1 to 6.
  function noData(id, text) {
    var chart = document.getElementById(id);
    if (!chart) return;
    if (!chart.classList.contains("chart-is-empty")) {
      if (chart.data) Plotly.purge(chart);
      chart.textContent = "";
      chart.classList.add("chart-is-empty");
      var note = document.createElement("p");
      note.className = "chart-empty";
      chart.appendChild(note);
    }
    chart.querySelector(".chart-empty").textContent = text;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  // An instant as the browser's local date and time, as Plotly shows a date string as written.
  function localTime(value) {
    var d = value instanceof Date ? value : new Date(value);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }
  // A new object for each chart: Plotly writes the range it chose back into the layout it is given.
  function timeAxis() { return { title: { text: "time of day, local" }, type: "date" }; }
  var CHART_CONFIG = { responsive: true, displayModeBar: false };
  // One line per figure under the server page's heading, each saying what it measures and over what window.
  function summaryLine(summary, text) {
    var line = document.createElement("span");
    line.className = "figure-line";
    line.textContent = text;
    summary.appendChild(line);
    return line;
  }

  function serverPage(summary) {
    var name = summary.dataset.server;
    var busy = false;

    function draw(health, samples) {
      var latency = health.latency_ms, probeLatency = health.probe_latency_ms;
      var of = sourceText(latency), span = windowText(latency.window_seconds);
      summary.textContent = "";
      var head = summaryLine(summary, " " + (health.status_reason || ""));
      head.insertBefore(badge(health.status, health.status_reason), head.firstChild);
      var figures = function (set) {
        return set.samples ? "p50 " + ms(set.p50) + " ms, p95 " + ms(set.p95) + " ms" : "no successful check yet";
      };
      summaryLine(summary, "Latency of the " + of + " (decides the status; target " + health.latency_target_ms +
        " ms), last " + span + ": " + figures(latency) +
        (health.latency_source === "check" ? " · probe " + figures(probeLatency) : "") +
        " · availability 24 h " + percent(health.availability["24h"]));
      summaryLine(summary, "Trend of the " + of + ", last " + windowText(health.trend.window_seconds) + ": " +
        trendText(health.trend) + (health.trend.direction ? " · " + health.trend.reason : ""));
      summaryLine(summary, "Prediction: " + predictionText(health));

      var checkName = latency.tool ? "check " + latency.tool : "check";
      var probes = samples.results.filter(function (s) { return s.kind === "probe"; });
      var synthetic = samples.results.filter(function (s) { return s.kind === "synthetic"; });
      var ok = function (list) { return list.filter(function (s) { return s.ok && s.latency_ms !== null; }); };
      var deciding = ok(health.latency_source === "check" ? synthetic : probes);
      if (!ok(probes).length && !ok(synthetic).length) {
        noData("latency-chart", "No data yet: no successful check in the last hour.");
      } else {
        var traces = [
          { x: ok(probes).map(function (s) { return localTime(s.at); }),
            y: ok(probes).map(function (s) { return s.latency_ms; }),
            name: "probe", mode: "markers", type: "scatter", marker: { size: 4 } },
        ];
        if (ok(synthetic).length) {
          traces.push({ x: ok(synthetic).map(function (s) { return localTime(s.at); }),
            y: ok(synthetic).map(function (s) { return s.latency_ms; }),
            name: plotText(checkName), mode: "markers", type: "scatter", marker: { size: 4 } });
        }
        var layout = { margin: { t: 30, r: 10, b: 45, l: 55 }, xaxis: timeAxis(),
          yaxis: { title: { text: "latency (ms)" }, rangemode: "tozero" },
          legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" }, shapes: [], annotations: [] };
        var trendSince = Date.now() - health.trend.window_seconds * 1000;
        var fitted = deciding.filter(function (s) { return Date.parse(s.at) >= trendSince; });
        if (health.trend.direction && fitted.length > 1) {
          // The trend line over its window, from its slope (ms per hour) through the window's mean.
          var xs = fitted.map(function (s) { return Date.parse(s.at); });
          var ys = fitted.map(function (s) { return s.latency_ms; });
          var xm = xs.reduce(function (a, b) { return a + b; }, 0) / xs.length;
          var ym = ys.reduce(function (a, b) { return a + b; }, 0) / ys.length;
          var slope = health.trend.slope_ms_per_hour / 3600000;
          var end = health.prediction ? Date.parse(health.prediction.at) : xs[xs.length - 1];
          traces.push({ x: [localTime(new Date(xs[0])), localTime(new Date(end))],
            y: [ym + slope * (xs[0] - xm), ym + slope * (end - xm)],
            name: plotText("trend, last " + windowText(health.trend.window_seconds) + " (" + health.trend.direction + ")"),
            mode: "lines", type: "scatter", line: { dash: "dot" } });
        }
        var highest = Math.max.apply(null, ok(probes).concat(ok(synthetic)).map(function (s) { return s.latency_ms; }));
        if (health.prediction || highest >= health.latency_target_ms / 2) {
          layout.shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: health.latency_target_ms,
            y1: health.latency_target_ms, line: { color: "rgba(220,80,60,0.8)", dash: "dash" } });
          layout.annotations.push({ xref: "paper", x: 0, xanchor: "left", y: health.latency_target_ms,
            yanchor: "bottom", text: "target " + health.latency_target_ms + " ms", showarrow: false,
            font: { size: 11, color: "rgb(180,60,45)" } });
        }
        if (health.prediction) {
          var prediction = health.prediction;
          var bandEnd = prediction.latest;
          if (!bandEnd) {
            // The band ends beyond the 24 h horizon: drawn on past the chart's right edge, not given an end.
            var at = Date.parse(prediction.at), first = Date.parse(samples.results[0].at);
            bandEnd = new Date(Date.parse(prediction.earliest) + 24 * 3600000);
            layout.xaxis.range = [localTime(first), localTime(new Date(at + Math.max(at - first, 0) / 4))];
          }
          layout.shapes.push({ type: "rect", xref: "x", yref: "paper", x0: localTime(prediction.earliest),
            x1: localTime(bandEnd), y0: 0, y1: 1, fillcolor: "rgba(220,80,60,0.12)", line: { width: 0 } });
          layout.annotations.push({ xref: "x", x: localTime(prediction.earliest), xanchor: "left", yref: "paper",
            y: 1, yanchor: "top", showarrow: false, font: { size: 11 },
            text: Math.round(prediction.band * 100) + " % band: crosses " + prediction.threshold + " ms" });
        }
        plot("latency-chart", traces, layout, CHART_CONFIG);
      }

      var minutes = {};
      probes.forEach(function (s) {
        if (s.in_maintenance) return;
        var minute = localTime(s.at).slice(0, 16);
        minutes[minute] = minutes[minute] || { ok: 0, all: 0 };
        minutes[minute].all += 1;
        if (s.ok) minutes[minute].ok += 1;
      });
      var keys = Object.keys(minutes).sort();
      if (!keys.length) {
        noData("availability-chart", "No data yet: no liveness check outside maintenance in the last hour.");
      } else {
        plot("availability-chart", [{ x: keys.map(function (k) { return k + ":00"; }),
          y: keys.map(function (k) { return minutes[k].ok / minutes[k].all; }), type: "bar", name: "availability" }],
          { margin: { t: 10, r: 10, b: 45, l: 55 }, xaxis: timeAxis(),
            yaxis: { range: [0, 1], tickformat: ".0%", title: { text: "checks passed" } } }, CHART_CONFIG);
      }

      var all = samples.results.filter(function (s) { return s.kind !== "passive"; });
      if (!all.length) {
        noData("timeline-chart", "No data yet: no check in the last hour.");
      } else {
        plot("timeline-chart", [{ x: all.map(function (s) { return localTime(s.at); }),
          y: all.map(function (s) { return s.kind === "synthetic" ? plotText(s.tool ? "check " + s.tool : "check") : "probe"; }),
          mode: "markers", type: "scatter",
          marker: { color: all.map(function (s) { return s.ok ? "#1f9d55" : "#d64545"; }), size: 7 },
          text: all.map(function (s) {
            return plotText(s.error || (s.latency_ms !== null ? s.latency_ms + " ms" : ""));
          }) }],
          { margin: { t: 10, r: 10, b: 45, l: 90 }, xaxis: timeAxis() }, CHART_CONFIG);
      }

      // The status over time, as steps between its levels (newest change last), up to now.
      var levels = ["offline", "unhealthy", "pending", "degraded", "maintenance", "online"];
      var changes = (health.status_history || []).slice().reverse();
      if (!changes.length) {
        noData("status-chart", "No data yet: no status change recorded.");
      } else {
        var steps = changes.map(function (c) { return localTime(c.at); }).concat([localTime(new Date())]);
        var levelsSeen = changes.map(function (c) { return c.to; }).concat([changes[changes.length - 1].to]);
        plot("status-chart", [{ x: steps, y: levelsSeen, type: "scatter", mode: "lines+markers",
          line: { shape: "hv" }, text: changes.map(function (c) { return plotText(c.reason); }).concat([""]),
          name: "status" }],
          { margin: { t: 10, r: 10, b: 45, l: 90 }, xaxis: timeAxis(),
            yaxis: { categoryorder: "array", categoryarray: levels } }, CHART_CONFIG);
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

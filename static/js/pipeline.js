/* The pipeline page: a live table of events (filters, pause and resume), the pipeline's numbers from
 * GET /api/pipeline/metrics/ every 2 s, and a Plotly chart of events per second by stream family.
 */
(function () {
  "use strict";

  var MAX_ROWS = 200;
  var METRICS_EVERY_MS = 2000;
  var CHART_POINTS = 150; // 5 minutes at one point every 2 s

  var live = null;
  var paused = false;
  var received = 0;
  var previous = null; // last metrics snapshot, for rates
  var chartReady = false;
  var families = []; // trace order
  // Stream names reach the chart's legend: shown as written, never as Plotly markup.
  var plotText = window.OrchestratorDom.plotText;

  function list(value) {
    return value
      .split(",")
      .map(function (part) { return part.trim(); })
      .filter(function (part) { return part.length; });
  }

  function text(value) {
    return value === null || value === undefined ? "–" : String(value);
  }

  function addRow(cells, className) {
    var body = document.getElementById("event-rows");
    var tr = document.createElement("tr");
    if (className) tr.className = className;
    cells.forEach(function (spec) {
      var td = document.createElement("td");
      td.textContent = spec[0];
      if (spec[1]) td.className = spec[1];
      tr.appendChild(td);
    });
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > MAX_ROWS) body.removeChild(body.lastChild);
  }

  function onEvent(event) {
    received += 1;
    document.querySelector('[data-metric="received"]').textContent = received;
    var time = new Date(event.at).toLocaleTimeString();
    addRow([
      [time],
      [event.stream],
      [event.seq, "col-seq num"],
      [event.kind],
      [text(event.server), "col-server"],
      [JSON.stringify(event.payload).slice(0, 300), "payload"],
    ]);
  }

  function onGap(stream, missed) {
    addRow([[new Date().toLocaleTimeString()], [stream], ["", "col-seq"], ["gap"], ["", "col-server"],
      [missed + " event(s) could not be delivered", "payload"]], "gap-row");
  }

  function showError(message) {
    var box = document.getElementById("filter-error");
    box.textContent = message;
    box.hidden = !message;
  }

  function connect() {
    var form = document.getElementById("event-filters");
    var streams = list(form.elements.streams.value);
    if (!streams.length) streams = ["*"];
    var servers = list(form.elements.servers.value);
    var kinds = list(form.elements.kinds.value);
    if (live) live.close();
    showError("");
    live = window.OrchestratorEvents.connect({
      streams: streams,
      servers: servers.length ? servers : null,
      kinds: kinds.length ? kinds : null,
      onEvent: onEvent,
      onGap: onGap,
      onError: showError,
      onState: function (state) {
        document.getElementById("socket-state").textContent = paused ? "paused" : state;
      },
    });
    if (paused) live.pause();
  }

  function setMetric(name, value) {
    var el = document.querySelector('[data-metric="' + name + '"]');
    if (el) el.textContent = value;
  }

  function family(stream) {
    return stream.split(".")[0];
  }

  function updateChart(rates, now) {
    if (!window.Plotly) return;
    var chart = document.getElementById("rate-chart");
    Object.keys(rates).forEach(function (name) {
      if (families.indexOf(name) >= 0) return;
      families.push(name);
      if (chartReady) Plotly.addTraces(chart, { x: [], y: [], name: plotText(name), mode: "lines", type: "scatter" });
    });
    if (!chartReady) {
      Plotly.newPlot(
        chart,
        families.map(function (name) {
          return { x: [], y: [], name: plotText(name), mode: "lines", type: "scatter" };
        }),
        {
          margin: { t: 10, r: 10, b: 30, l: 40 },
          yaxis: { title: { text: "events/s" }, rangemode: "tozero" },
          legend: { orientation: "h" },
        },
        { responsive: true, displayModeBar: false }
      );
      chartReady = true;
    }
    if (!families.length) return;
    Plotly.extendTraces(
      chart,
      {
        x: families.map(function () { return [now]; }),
        y: families.map(function (name) { return [rates[name] || 0]; }),
      },
      families.map(function (_, index) { return index; }),
      CHART_POINTS
    );
  }

  function fillTable(id, rows, columns) {
    var body = document.getElementById(id);
    body.textContent = "";
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      columns.forEach(function (column) {
        var td = document.createElement("td");
        td.textContent = text(column[0](row));
        if (column[1]) td.className = column[1];
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function pollMetrics() {
    fetch("/api/pipeline/metrics/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (metrics) {
        if (!metrics) return;
        var now = new Date();
        setMetric("events_in", metrics.events_in);
        setMetric("persisted", metrics.persisted);
        setMetric("dropped", metrics.dropped_at_ingest + (metrics.gaps_sent_to_browsers || 0));
        var lag = metrics.publish_to_browser_lag_ms || {};
        setMetric("lag_p50", text(lag.p50));
        setMetric("lag_p99", text(lag.p99));
        setMetric("sockets", metrics.sockets ? metrics.sockets.open : "–");
        var rates = {};
        if (previous) {
          var seconds = Math.max(0.001, (now - previous.at) / 1000);
          var total = 0;
          Object.keys(metrics.streams || {}).forEach(function (stream) {
            var before = previous.streams[stream] ? previous.streams[stream].in : 0;
            var delta = Math.max(0, metrics.streams[stream].in - before);
            rates[family(stream)] = (rates[family(stream)] || 0) + delta / seconds;
            total += delta / seconds;
          });
          setMetric("rate", total.toFixed(1));
          updateChart(rates, now);
        }
        previous = { at: now, streams: metrics.streams || {} };
        fillTable("processor-rows", metrics.processors || [], [
          [function (p) { return p.name; }],
          [function (p) { return p.events_in; }, "num"],
          [function (p) { return p.events_out; }, "num"],
          [function (p) { return p.errors; }, "num"],
          [function (p) { return p.processing_ms ? p.processing_ms.p99 : null; }, "num"],
        ]);
        fillTable("producer-rows", metrics.producers || [], [
          [function (p) { return p.server; }],
          [function (p) { return p.events; }, "num"],
          [function (p) { return p.errors; }, "num"],
          [function (p) { return p.last_error || ""; }],
        ]);
      })
      .catch(function () {});
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.OrchestratorEvents) return;
    document.getElementById("event-filters").addEventListener("submit", function (event) {
      event.preventDefault();
      connect();
    });
    var pauseButton = document.getElementById("pause-button");
    pauseButton.addEventListener("click", function () {
      paused = !paused;
      pauseButton.textContent = paused ? "Resume" : "Pause";
      pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
      document.getElementById("socket-state").textContent = paused ? "paused" : "live";
      if (live) {
        if (paused) live.pause();
        else live.resume();
      }
    });
    connect();
    pollMetrics();
    window.setInterval(pollMetrics, METRICS_EVERY_MS);
  });
})();

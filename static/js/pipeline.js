/* The pipeline page: a live table of events (filters, pause and resume), the pipeline's numbers from
 * GET /api/pipeline/metrics/ every 2 s, and a Plotly chart of events per second by stream family over the last
 * 5 minutes (the x axis always spans that window, so the first point does not make it a millisecond wide).
 * Applying filters removes the rows that no longer match them; a long payload shows its first line, the whole of
 * it one click away.
 */
(function () {
  "use strict";

  var MAX_ROWS = 200;
  var METRICS_EVERY_MS = 2000;
  var CHART_POINTS = 150; // 5 minutes at one point every 2 s
  var CHART_WINDOW_MS = CHART_POINTS * METRICS_EVERY_MS;
  var PAYLOAD_SHOWN = 120; // characters of a payload shown before "more"

  var live = null;
  var paused = false;
  var received = 0;
  var previous = null; // last metrics snapshot, for rates
  var chartReady = false;
  var families = []; // trace order
  var current = { streams: ["*"], servers: [], kinds: [] }; // the filter applied
  var generation = 0; // which connection an event came in on: one from a replaced socket is not shown
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

  // A stream pattern as the server reads it (pipeline/filters.py): `*` is any run of characters, nothing else is
  // special, case matters.
  function streamMatches(pattern, stream) {
    if (pattern.indexOf("*") < 0) return pattern === stream;
    var expression = pattern.split("*").map(function (part) {
      return part.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    }).join(".*");
    return new RegExp("^" + expression + "$").test(stream);
  }

  function wanted(filter, row) {
    if (!filter.streams.some(function (pattern) { return streamMatches(pattern, row.stream); })) return false;
    if (row.gap) return true; // a gap concerns the stream, whatever the server or kind
    if (filter.servers.length && filter.servers.indexOf(row.server) < 0) return false;
    return !filter.kinds.length || filter.kinds.indexOf(row.kind) >= 0;
  }

  // The rows kept in the table with what they were filtered on, so a new filter can remove those it no longer wants.
  function pruneRows(filter) {
    var body = document.getElementById("event-rows");
    Array.prototype.slice.call(body.children).forEach(function (tr) {
      var row = { stream: tr.dataset.stream, server: tr.dataset.server || null, kind: tr.dataset.kind, gap: tr.dataset.gap === "1" };
      if (!wanted(filter, row)) body.removeChild(tr);
    });
  }

  function payloadCell(payload) {
    var td = document.createElement("td");
    td.className = "payload";
    var whole = JSON.stringify(payload);
    if (whole.length <= PAYLOAD_SHOWN) {
      td.textContent = whole;
      return td;
    }
    var details = document.createElement("details");
    var summary = document.createElement("summary");
    summary.textContent = whole.slice(0, PAYLOAD_SHOWN) + "…";
    summary.title = "Show the whole payload";
    var pre = document.createElement("pre");
    pre.textContent = JSON.stringify(payload, null, 2);
    details.appendChild(summary);
    details.appendChild(pre);
    td.appendChild(details);
    return td;
  }

  function addRow(row, cells, className) {
    var body = document.getElementById("event-rows");
    var tr = document.createElement("tr");
    if (className) tr.className = className;
    tr.dataset.stream = row.stream;
    tr.dataset.kind = row.kind || "";
    if (row.server) tr.dataset.server = row.server;
    if (row.gap) tr.dataset.gap = "1";
    cells.forEach(function (spec) {
      if (spec instanceof Node) { tr.appendChild(spec); return; }
      var td = document.createElement("td");
      td.textContent = spec[0];
      if (spec[1]) td.className = spec[1];
      tr.appendChild(td);
    });
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > MAX_ROWS) body.removeChild(body.lastChild);
  }

  function onEvent(event) {
    var row = { stream: event.stream, server: event.server, kind: event.kind };
    if (!wanted(current, row)) return; // from before the filter changed
    received += 1;
    document.querySelector('[data-metric="received"]').textContent = received;
    var time = new Date(event.at).toLocaleTimeString();
    addRow(row, [
      [time],
      [event.stream, "stream-cell"],
      [event.seq, "col-seq num"],
      [event.kind],
      [text(event.server), "col-server"],
      payloadCell(event.payload),
    ]);
  }

  function onGap(stream, missed) {
    var row = { stream: stream, kind: "gap", gap: true };
    if (!wanted(current, row)) return;
    addRow(row, [[new Date().toLocaleTimeString()], [stream, "stream-cell"], ["", "col-seq"], ["gap"], ["", "col-server"],
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
    current = { streams: streams, servers: servers, kinds: kinds };
    pruneRows(current);
    generation += 1;
    var mine = generation;
    live = window.OrchestratorEvents.connect({
      streams: streams,
      servers: servers.length ? servers : null,
      kinds: kinds.length ? kinds : null,
      onEvent: function (event) { if (mine === generation) onEvent(event); },
      onGap: function (stream, missed) { if (mine === generation) onGap(stream, missed); },
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

  var NO_DATA = {
    text: "no data yet: a rate needs two readings, 2 s apart", xref: "paper", yref: "paper", x: 0.5, y: 0.5,
    showarrow: false, font: { color: "#5b6576" },
  };

  function xWindow(now) {
    return [new Date(now.getTime() - CHART_WINDOW_MS), now];
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
          margin: { t: 10, r: 10, b: 40, l: 50 },
          xaxis: { type: "date", range: xWindow(now), title: { text: "time (last 5 minutes, a point every 2 s)" } },
          yaxis: { title: { text: "events/s" }, rangemode: "tozero", range: families.length ? undefined : [0, 1] },
          legend: { orientation: "h", y: -0.35 },
          annotations: families.length ? [] : [NO_DATA],
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
    Plotly.relayout(chart, { "xaxis.range": xWindow(now), "yaxis.autorange": true, annotations: [] });
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
    updateChart({}, new Date()); // the empty chart, with its window and "no data yet"
    pollMetrics();
    window.setInterval(pollMetrics, METRICS_EVERY_MS);
  });
})();

/* The fusion page: ask (POST /api/fusion/query/), show the fused value, the strategy's decision in a sentence, each
 * source (value, latency, state, reason) and a Plotly chart of the inputs with the fused value and its band; the raw
 * explanation behind a disclosure. Recent runs and trust, live from the stream fusion.runs; a past run opens at
 * /fusion/?run=<id> (GET /api/fusion/runs/<id>/). Tools that change state are left out of the picker until
 * "Show tools that change state" is ticked, and only then is the opt-in (allow_state_changing) sent.
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
    // A quorum above the sources on offer can never be met: the default follows the tool's sources.
    var quorum = form.querySelector("input[name=quorum]");
    var offered = box.querySelectorAll("input[name=servers]").length;
    if (quorum && offered && parseInt(quorum.value, 10) > offered) quorum.value = String(offered);
  }

  // The picker hides tools that change state unless the box is ticked; a tool chosen while shown carries a warning.
  function applyStateChanging(form) {
    var select = form.querySelector("select[name=tool]");
    var show = form.querySelector("input[name=allow_state_changing]");
    if (!show) return;
    Array.prototype.forEach.call(select.options, function (option) {
      var hide = !!option.dataset.stateChanging && !show.checked;
      option.hidden = hide;
      option.disabled = hide;
    });
    var current = select.options[select.selectedIndex];
    if (!current || current.disabled) {
      var first = Array.prototype.find.call(select.options, function (option) { return !option.disabled; });
      if (first) select.value = first.value;
      renderSources(form);
    }
    current = select.options[select.selectedIndex];
    var warning = document.getElementById("state-changing-warning");
    var why = current && current.dataset.stateChanging;
    warning.hidden = !why;
    warning.textContent = why
      ? "Warning: " + current.value + " changes state (" + why + "). Fusing it calls it on every selected source " +
        "at once, and each call takes effect."
      : "";
  }

  function clearErrors() {
    var box = document.getElementById("fusion-error");
    box.hidden = true;
    box.textContent = "";
    Array.prototype.forEach.call(document.querySelectorAll("#fusion-form .field-error"), function (el) {
      el.parentNode.removeChild(el);
    });
  }

  function showError(message) {
    var box = document.getElementById("fusion-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  // A 400 names each bad field ("tool", "arguments.symbol", "ranges.bid"): the message goes under that field of the
  // form when it has one, else in the box under the form (with the field's name).
  function showFieldErrors(form, body) {
    clearErrors();
    if (!body || typeof body !== "object") { showError("The request failed."); return; }
    var unplaced = [];
    Object.keys(body).forEach(function (field) {
      var messages = body[field];
      var text = Array.isArray(messages) ? messages.join(" ") : JSON.stringify(messages);
      var top = field.split(".")[0];
      var input = form.querySelector('[name="' + top + '"]');
      var holder = top === "servers" ? document.getElementById("source-choices") : input && input.closest("label");
      if (!holder) { unplaced.push(field + ": " + text); return; }
      var note = document.createElement("span");
      note.className = "field-error";
      note.dataset.errorFor = field;
      note.setAttribute("role", "alert");
      note.textContent = (field !== top ? field + ": " : "") + text;
      holder.appendChild(note);
    });
    if (unplaced.length) showError(unplaced.join(" · "));
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

  var STATE_WORDS = {
    used: "used", excluded: "excluded", failed: "failed", timed_out: "timed out",
  };

  function fact(list, term, value) {
    if (value === null || value === undefined || value === "") return;
    var dt = document.createElement("dt");
    dt.textContent = term;
    var dd = document.createElement("dd");
    dd.textContent = value;
    list.appendChild(dt);
    list.appendChild(dd);
  }

  function showFacts(answer, explanation) {
    var list = document.getElementById("result-facts");
    list.textContent = "";
    var method = (explanation && explanation.method) || {};
    fact(list, "Question", (answer.tool || answer.resource) + (explanation && explanation.query && explanation.query.arguments
      ? " " + JSON.stringify(explanation.query.arguments) : ""));
    fact(list, "Strategy", answer.strategy + (method.description ? ": " + method.description : ""));
    fact(list, "Quorum", answer.valid_answers + " valid answer(s) of the " + answer.quorum + " required" +
      (answer.quorum_met ? " (met)" : " (not met)"));
    if (explanation && explanation.confidence) {
      fact(list, "Confidence", (explanation.confidence.value !== null ? Math.round(explanation.confidence.value * 100) +
        " %: " : "") + explanation.confidence.rule);
    }
    if (explanation && explanation.trust_updates && explanation.trust_updates.length) {
      fact(list, "Trust learned", explanation.trust_updates.map(function (u) {
        return u.server + " " + u.before.toFixed(3) + " → " + u.after.toFixed(3);
      }).join(" · "));
    }
    fact(list, "Asked at", new Date(answer.created_at).toLocaleString() + ", answered in " + answer.duration_ms + " ms");
  }

  function showAnswer(answer, explanation) {
    document.getElementById("fusion-result").hidden = false;
    document.getElementById("result-run").textContent = "run #" + answer.run_id + (answer.cached ? " (from the cache)" : "") +
      (answer.shared ? " (shared with a concurrent identical query)" : "");
    document.getElementById("result-link").href = "?run=" + encodeURIComponent(answer.run_id);
    document.getElementById("result-decision").textContent = answer.decision || "";
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
      badge.textContent = STATE_WORDS[row.state] || row.state.replace("_", " ");
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
    showFacts(answer, explanation);
    document.getElementById("explanation").textContent = explanation ? JSON.stringify(explanation, null, 2) : "";
    if (!explanation) {
      getJSON("/api/fusion/runs/" + answer.run_id + "/").then(function (run) {
        showFacts(run, run.explanation);
        document.getElementById("explanation").textContent = JSON.stringify(run.explanation, null, 2);
      }).catch(function () {});
    }
  }

  // A past run, with its explanation: from the recent runs list, or /fusion/?run=<id>.
  function openRun(id, remember) {
    return getJSON("/api/fusion/runs/" + encodeURIComponent(id) + "/").then(function (run) {
      showAnswer(run, run.explanation);
      if (remember && window.history && window.history.replaceState) {
        window.history.replaceState(null, "", "?run=" + encodeURIComponent(run.run_id));
      }
      document.getElementById("fusion-result").scrollIntoView({ block: "start" });
    }).catch(function () {
      var section = document.getElementById("fusion-result");
      section.hidden = false;
      document.getElementById("result-run").textContent = "run #" + id;
      var summary = document.getElementById("result-summary");
      summary.textContent = "Run #" + id + " was not found (runs are kept for a limited time).";
      summary.className = "field-error";
    });
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
    // The opt-in is sent only for a tool shown because the box is ticked: a read never needs it.
    var option = form.querySelector("select[name=tool]").selectedOptions[0];
    if (option && option.dataset.stateChanging && data.get("allow_state_changing")) body.allow_state_changing = true;
    try {
      body.arguments = JSON.parse(data.get("arguments") || "{}");
    } catch (e) {
      showFieldErrors(form, { arguments: ["Not valid JSON (" + e.message + ")."] });
      return;
    }
    clearErrors();
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    postJSON("/api/fusion/query/", body).then(function (reply) {
      if (reply.status === 200 || (reply.status === 502 && reply.json.run_id)) {
        showAnswer(reply.json);
        if (window.history && window.history.replaceState) window.history.replaceState(null, "", "?run=" + reply.json.run_id);
      } else showFieldErrors(form, reply.json);
    }).catch(function (e) { showError("The request failed: " + e.message); })
      .then(function () { button.disabled = false; });
  }

  function renderRuns(page) {
    var body = document.getElementById("run-rows");
    body.textContent = "";
    page.results.forEach(function (run) {
      var tr = document.createElement("tr");
      tr.dataset.run = run.run_id;
      var first = td("");
      var link = document.createElement("a");
      link.href = "?run=" + encodeURIComponent(run.run_id);
      link.className = "run-link";
      link.textContent = "#" + run.run_id + " " + new Date(run.created_at).toLocaleTimeString();
      link.setAttribute("aria-label", "Open run " + run.run_id);
      link.addEventListener("click", function (event) {
        event.preventDefault();
        openRun(run.run_id, true);
      });
      first.appendChild(link);
      tr.appendChild(first);
      tr.appendChild(td((run.tool || run.resource) + ""));
      tr.appendChild(td(run.strategy));
      tr.appendChild(td(run.error ? "✕ " + run.error : short(run.value), "value-cell"));
      tr.appendChild(td(run.confidence !== null ? Math.round(run.confidence * 100) + " %" : null, "num"));
      var used = run.sources.filter(function (s) { return s.state === "used"; }).length;
      tr.appendChild(td(used + "/" + run.sources.length, "num col-wide"));
      tr.appendChild(td(Math.round(run.duration_ms), "num col-wide"));
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
      applyStateChanging(form);
      form.querySelector("select[name=tool]").addEventListener("change", function () {
        renderSources(form);
        applyStateChanging(form);
      });
      var show = form.querySelector("input[name=allow_state_changing]");
      if (show) show.addEventListener("change", function () { applyStateChanging(form); });
      form.addEventListener("submit", function (event) { event.preventDefault(); ask(form); });
      form.querySelector("button[type=submit]").disabled = false;
    }
    var wanted = document.getElementById("fusion-result").dataset.openRun;
    if (wanted) openRun(wanted, false);
    refresh();
    window.setInterval(refresh, 15000);
    if (window.OrchestratorEvents) {
      window.OrchestratorEvents.connect({ streams: ["fusion.runs"], onEvent: refresh });
    }
  });
})();

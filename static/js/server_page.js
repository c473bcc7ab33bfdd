/* The server page's button row (Edit / Enable-Disable / Remove, operators) and its discovery progress (everyone).
 *
 * The buttons go through the REST API like every other change: PATCH /api/servers/<name>/ {"enabled": ...} and
 * DELETE /api/servers/<name>/; a refusal (403) or error is shown under them, in the API's words.
 *
 * Discovery progress follows the page's live status: fleet.js keeps `data-status` of every element marked
 * data-server="<name>" current from the pipeline's fleet.status stream (/ws/events/), this element included, so
 * this script opens no socket of its own. When the server comes up it reads what discovery found
 * (GET /api/servers/<name>/capabilities/history/: newest first, empty while nothing is recorded yet).
 */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;

  // -- the button row -------------------------------------------------------------------------------------------

  var actions = document.getElementById("server-actions");
  if (actions && actions.querySelector("[data-action]")) {
    var error = document.getElementById("server-action-error");
    var confirmBox = actions.querySelector(".remove-confirm");

    var request = function (method, body) {
      error.hidden = true;
      return fetch(actions.dataset.api, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": dom.csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(function (response) {
        if (response.ok) return response;
        return response
          .json()
          .catch(function () { return {}; })
          .then(function (json) {
            var detail = json.detail || Object.keys(json).map(function (key) { return key + ": " + json[key]; }).join(" ");
            throw new Error(detail || "HTTP " + response.status);
          });
      });
    };

    var fail = function (reason) {
      error.textContent = reason.message;
      error.hidden = false;
      actions.querySelectorAll("button").forEach(function (button) { button.disabled = false; });
    };

    actions.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (!button) return;
      var action = button.dataset.action;
      if (action === "remove") {
        confirmBox.hidden = false;
        confirmBox.querySelector('[data-action="remove-confirmed"]').focus();
      } else if (action === "remove-cancel") {
        confirmBox.hidden = true;
      } else if (action === "remove-confirmed") {
        button.disabled = true;
        request("DELETE")
          .then(function () { window.location.assign("/"); })
          .catch(fail);
      } else if (action === "enable" || action === "disable") {
        button.disabled = true;
        request("PATCH", { enabled: action === "enable" })
          .then(function () { window.location.reload(); })
          .catch(fail);
      }
    });
    // Enabled only once this script handles them.
    actions.querySelectorAll("button[data-action]").forEach(function (button) { button.disabled = false; });
  }

  // -- discovery progress ---------------------------------------------------------------------------------------

  var progress = document.getElementById("discovery-progress");
  if (!progress || progress.dataset.enabled !== "true") return;

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function say(state, text) {
    progress.dataset.state = state;
    progress.textContent = text;
  }

  function reason() {
    var element = document.querySelector('.server-head-status [data-field="status-reason"]');
    return element ? element.textContent.trim() : "";
  }

  var reading = false;
  function readDiscovery() {
    if (reading) return;
    reading = true;
    fetch(progress.dataset.historyApi, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (history) {
        // Newest first; empty while nothing has been recorded yet.
        var latest = history[0];
        if (!latest) {
          say("listing", "Connected; listing what it offers…");
          return;
        }
        var counts = latest.counts;
        say(
          "discovered",
          "Discovered " +
            [plural(counts.tools, "tool"), plural(counts.resources, "resource"), plural(counts.prompts, "prompt")].join(
              ", "
            ) +
            " (protocol " + latest.protocol_version + ")."
        );
      })
      .catch(function (failure) {
        console.warn("discovery progress:", failure);
      })
      .then(function () {
        reading = false;
      });
  }

  function follow(status) {
    if (status === "online" || status === "degraded") {
      // Once discovered it stays so; a status that only confirms it needs no new read.
      if (progress.dataset.state !== "discovered") readDiscovery();
    } else if (status === "unknown") {
      if (progress.dataset.state !== "discovered") say("connecting", "Connecting and discovering what it offers…");
    } else if (status === "offline" || status === "pending" || status === "unhealthy") {
      var why = reason();
      say("failed", "Not connected" + (why ? ": " + why : "."));
    }
  }

  new MutationObserver(function () {
    follow(progress.dataset.status);
  }).observe(progress, { attributes: true, attributeFilter: ["data-status"] });
  if (progress.dataset.state !== "discovered") follow(progress.dataset.status);
})();

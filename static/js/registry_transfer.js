/* Import and export of the registry, through the REST API:
 *   GET  /api/registry/export/?format=json[&include_secrets=true]   (a download)
 *   POST /api/registry/import/?dry_run=true   -> {created, updated, unchanged, dry_run}: the preview, nothing written
 *   POST /api/registry/import/                -> the same, applied (all or nothing)
 * A document the API refuses (400 {detail, problems}: each problem names its entry and field; 403 {detail}) is shown
 * as refused with those reasons, and nothing can be applied. Apply sends exactly the document that was previewed.
 * Server names and problems come from the document and the server: textContent only.
 */
(function () {
  "use strict";

  var exportLink = document.getElementById("export-link");
  var secrets = document.getElementById("export-secrets");
  if (exportLink && secrets) {
    secrets.addEventListener("change", function () {
      exportLink.href = exportLink.dataset.base + (secrets.checked ? "&include_secrets=true" : "");
      exportLink.download = secrets.checked ? "mcp-registry-with-secrets.json" : "mcp-registry.json";
    });
  }

  var form = document.getElementById("import-form");
  if (!form) return;
  var dom = window.OrchestratorDom;
  var fileInput = document.getElementById("import-file");
  var textInput = document.getElementById("import-text");
  var previewButton = document.getElementById("import-preview");
  var applyButton = document.getElementById("import-apply");
  var report = document.getElementById("import-report");
  var previewed = null; // the document the shown preview is of: the only one Apply sends

  function forget() {
    previewed = null;
    applyButton.disabled = true;
  }

  function heading(text, className) {
    var h = document.createElement("h3");
    h.textContent = text;
    if (className) h.className = className;
    report.appendChild(h);
  }

  function group(label, names, className) {
    var section = document.createElement("div");
    section.className = "import-group " + className;
    section.dataset.group = className;
    var title = document.createElement("p");
    title.className = "import-group-title";
    title.textContent = label + " (" + names.length + ")";
    section.appendChild(title);
    var list = document.createElement("ul");
    names.forEach(function (name) {
      var item = document.createElement("li");
      item.textContent = name;
      list.appendChild(item);
    });
    if (!names.length) {
      var none = document.createElement("li");
      none.className = "subtle";
      none.textContent = "none";
      list.appendChild(none);
    }
    section.appendChild(list);
    report.appendChild(section);
  }

  function showOutcome(outcome, dryRun) {
    report.replaceChildren();
    report.hidden = false;
    report.dataset.state = dryRun ? "preview" : "applied";
    heading(dryRun ? "Preview: nothing has changed yet" : "Imported");
    group(dryRun ? "Would be created" : "Created", outcome.created || [], "created");
    group(dryRun ? "Would be updated" : "Updated", outcome.updated || [], "updated");
    group("Unchanged", outcome.unchanged || [], "unchanged");
  }

  function showRefusal(status, json) {
    report.replaceChildren();
    report.hidden = false;
    report.dataset.state = "refused";
    heading("Refused: nothing would be imported", "import-refused");
    var problems = json.problems && json.problems.length ? json.problems : [json.detail || "HTTP " + status];
    group("Refused, with reasons", problems, "refused");
  }

  function read() {
    // The pasted text when there is some, else the chosen file's.
    var text = textInput.value.trim();
    if (text) return Promise.resolve(text);
    var file = fileInput.files && fileInput.files[0];
    if (!file) return Promise.reject(new Error("Choose a file or paste a document first."));
    return file.text();
  }

  function send(documentBody, dryRun) {
    return fetch("/api/registry/import/" + (dryRun ? "?dry_run=true" : ""), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": dom.csrfToken() },
      body: JSON.stringify(documentBody),
    }).then(function (response) {
      return response
        .json()
        .catch(function () { return {}; })
        .then(function (json) { return { status: response.status, json: json }; });
    });
  }

  function failed(message) {
    report.replaceChildren();
    report.hidden = false;
    report.dataset.state = "refused";
    heading("Refused: nothing would be imported", "import-refused");
    group("Refused, with reasons", [message], "refused");
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    forget();
    previewButton.disabled = true;
    read()
      .then(function (text) {
        var parsed;
        try {
          parsed = JSON.parse(text);
        } catch (error) {
          throw new Error("The document is not valid JSON: " + error.message);
        }
        return send(parsed, true).then(function (response) {
          if (response.status === 200) {
            showOutcome(response.json, true);
            previewed = parsed;
            applyButton.disabled = false;
          } else {
            showRefusal(response.status, response.json);
          }
        });
      })
      .catch(function (error) {
        failed(error.message);
      })
      .then(function () {
        previewButton.disabled = false;
      });
  });

  applyButton.addEventListener("click", function () {
    if (!previewed) return;
    var documentBody = previewed;
    forget();
    send(documentBody, false)
      .then(function (response) {
        if (response.status === 200) showOutcome(response.json, false);
        else showRefusal(response.status, response.json);
      })
      .catch(function (error) {
        failed(error.message);
      });
  });

  // A changed document needs a new preview before it can be applied.
  textInput.addEventListener("input", forget);
  fileInput.addEventListener("change", forget);
  previewButton.disabled = false;
})();

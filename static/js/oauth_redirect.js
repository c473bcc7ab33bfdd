// "Authorize": on to the authorization server. A link, not a redirect of the form's POST, because the page's
// Content-Security-Policy (form-action 'self') would stop a form submission from landing on another origin.
(function () {
  "use strict";
  var link = document.getElementById("oauth-continue");
  if (link) window.location.replace(link.href);
})();

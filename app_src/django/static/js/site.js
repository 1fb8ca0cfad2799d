// Shows which interpreter and server answered, on the index page only.
(function () {
  "use strict";
  var target = document.getElementById("runtime");
  if (!target || !window.fetch) {
    return;
  }
  fetch(target.getAttribute("data-url"), { headers: { Accept: "application/json" } })
    .then(function (response) { return response.json(); })
    .then(function (info) {
      target.textContent = "served by " + info.host + " (pid " + info.pid + "): " + info.interpreter +
        " " + info.python_version + (info.jit ? " with JIT" : "") + " under " + info.server;
    })
    .catch(function () { target.textContent = ""; });
})();

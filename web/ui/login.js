// raywatch login: posts the dashboard token to /login, which sets an
// HttpOnly session cookie, then opens the dashboard. Without JavaScript the
// form posts to /login directly.
"use strict";

(function () {
  const form = document.getElementById("login");
  const input = document.getElementById("token");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    error.hidden = true;
    fetch("/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: input.value }),
      credentials: "same-origin",
    }).then(function (resp) {
      if (resp.ok) {
        location.replace("/");
        return;
      }
      error.textContent = resp.status === 401 ? "Wrong token." : "Login failed (" + resp.status + ").";
      error.hidden = false;
      input.select();
    }, function () {
      error.textContent = "raywatch is not reachable.";
      error.hidden = false;
    });
  });
})();

// raywatch dashboard: a live table of alerts fed by the /ws websocket.
// Every value shown comes from attacker-controlled logs, so it is only ever
// inserted with textContent, never as HTML.
"use strict";

(function () {
  const MAX_ROWS = 1000;
  const rows = document.getElementById("alert-rows");
  const conn = document.getElementById("conn");
  const count = document.getElementById("count");
  const empty = document.getElementById("empty");
  const byID = new Map(); // alert id -> <tr>
  let backoff = 500;

  function get(obj, path) {
    let v = obj;
    for (const k of path.split(".")) {
      if (v === null || typeof v !== "object" || !(k in v)) return "";
      v = v[k];
    }
    return v === null || v === undefined ? "" : String(v);
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    td.title = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function render(a) {
    const ev = a.event || {};
    const tr = document.createElement("tr");
    tr.dataset.id = a.id;
    tr.dataset.rule = (a.rule && a.rule.id) || "";
    cell(tr, a.last_seen ? new Date(a.last_seen).toISOString().replace("T", " ").replace("Z", "") : "");
    cell(tr, (a.rule && a.rule.title) || "", "rule");
    const level = (a.rule && a.rule.level) || "";
    cell(tr, level, "level level-" + level.replace(/[^a-z]/g, ""));
    cell(tr, get(ev, "source.ip") || get(ev, "cloudflare.ClientIP"), "ip");
    cell(tr, get(ev, "destination.address") || get(ev, "cloudflare.ClientRequestHost"), "host");
    cell(tr, get(ev, "url.original") || get(ev, "url.path"), "path");
    cell(tr, get(ev, "user_agent.original"), "ua");
    cell(tr, a.intake || "", "intake");
    return tr;
  }

  function add(a, live) {
    if (!a || typeof a.id !== "string") return;
    const tr = render(a);
    if (live) tr.classList.add("new");
    const old = byID.get(a.id);
    if (old) {
      old.replaceWith(tr);
    } else {
      // Keep newest first: rows are ordered by id, which starts with the time.
      let before = rows.firstChild;
      while (before && before.dataset.id > a.id) before = before.nextSibling;
      rows.insertBefore(tr, before);
    }
    byID.set(a.id, tr);
    while (rows.childNodes.length > MAX_ROWS) {
      const last = rows.lastChild;
      byID.delete(last.dataset.id);
      rows.removeChild(last);
    }
    empty.hidden = byID.size > 0;
    count.textContent = byID.size + (byID.size === 1 ? " alert" : " alerts");
  }

  function setState(state, text) {
    conn.className = "conn conn-" + state;
    conn.textContent = text;
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/ws");
    let ready = false;
    setState("connecting", "connecting");
    ws.onmessage = function (e) {
      let msg;
      try { msg = JSON.parse(e.data); } catch (_) { return; }
      if (msg.type === "ready") {
        ready = true;
        backoff = 500;
        setState("live", "live");
      } else if (msg.type === "alert") {
        add(msg.alert, ready);
      }
    };
    ws.onclose = function () {
      // A refused websocket hides its status: ask the API whether the
      // session has expired, and if so go back to the login page.
      fetch("/api/v1/stats", { credentials: "same-origin" }).then(function (resp) {
        if (resp.status === 401) location.replace("/login.html");
      }, function () {});
      setState("down", "disconnected, retrying in " + Math.round(backoff / 1000) + " s");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  }

  connect();
})();

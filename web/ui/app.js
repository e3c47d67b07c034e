// raywatch dashboard: the live alert list (/ws plus the REST API), alert
// details, the overview, the rules and the IOC files.
//
// Every value shown comes from attacker-controlled logs or from rule and
// indicator files, so it is only ever inserted as text (textContent,
// createTextNode) or as an attribute of an element built here, never as
// HTML. Links are made only from http(s) URLs. The Content-Security-Policy
// forbids inline scripts and styles besides.
"use strict";

(function () {
  // ------------------------------------------------------------ helpers
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const LEVELS = ["critical", "high", "medium", "low", "informational"];
  const PAGE = 100;

  // el builds an element: attrs sets properties (className, title, ...),
  // dataset entries (data: {...}) and a few attributes; children are
  // elements or strings (inserted as text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "data") Object.assign(e.dataset, v);
        else if (k === "text") e.textContent = String(v);
        else if (k === "href") {
          const u = safeURL(v);
          if (u) e.href = u;
        } else if (k in e && k !== "list") e[k] = v;
        else e.setAttribute(k, String(v));
      }
    }
    append(e, children);
    return e;
  }

  function append(parent, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      parent.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return parent;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // safeURL returns u as an absolute URL if it is http(s) or a path of this
  // site, else null: javascript:, data: and the like never become links.
  function safeURL(u) {
    if (typeof u !== "string") return null;
    try {
      const x = new URL(u, location.href);
      if (x.protocol === "https:" || x.protocol === "http:") return x.href;
    } catch (_) { /* not a URL */ }
    return null;
  }

  function extLink(url, text) {
    const u = safeURL(url);
    if (!u) return el("span", { className: "mono", text: text || String(url) });
    return el("a", { href: u, target: "_blank", rel: "noopener noreferrer", text: text || u });
  }

  function get(obj, path) {
    let v = obj;
    for (const k of path.split(".")) {
      if (v === null || typeof v !== "object" || !(k in v)) return "";
      v = v[k];
    }
    return v === null || v === undefined || typeof v === "object" ? "" : String(v);
  }

  function first(obj, ...paths) {
    for (const p of paths) {
      const v = get(obj, p);
      if (v !== "") return v;
    }
    return "";
  }

  function fmtTime(t) {
    if (!t) return "";
    const d = new Date(t);
    if (isNaN(d)) return String(t);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "");
  }

  function fmtNum(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : String(n ?? "");
  }

  // countryName turns a Cloudflare country code (ISO 3166-1, "T1" for
  // Tor, "XX" for unknown) into its English name.
  const regions = (() => {
    try { return new Intl.DisplayNames(["en"], { type: "region" }); } catch (_) { return null; }
  })();
  function countryName(code) {
    const c = String(code || "").toUpperCase();
    if (c === "T1") return "Tor";
    if (c === "XX") return "unknown country";
    if (regions && /^[A-Z]{2}$/.test(c)) {
      try {
        const n = regions.of(c);
        if (n && n !== c) return n;
      } catch (_) { /* not a region */ }
    }
    return c;
  }

  // rangeText says when an alert's events happened.
  function rangeText(from, to) {
    const a = Date.parse(from), b = Date.parse(to);
    if (!a || !b || a === b) return fmtTime(from || to) + " UTC";
    const s = Math.round((b - a) / 1000);
    const d = s < 120 ? s + " s" : s < 7200 ? Math.round(s / 60) + " min" : s < 172800 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " days";
    return fmtTime(from) + " to " + fmtTime(to) + " UTC (" + d + ")";
  }

  // The verdicts an analyst gives when closing an alert.
  const REASONS = [
    ["false_positive", "False positive", "the rule matched something it should not have"],
    ["benign", "Benign", "a real match, but expected: a scanner we pay for, a health check"],
    ["true_positive", "True positive", "a real attack, handled"],
  ];
  const reasonLabel = (r) => (REASONS.find((x) => x[0] === r) || [r, r])[1];

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function levelBadge(level) {
    const l = String(level || "").toLowerCase();
    return el("span", { className: "badge level level-" + l.replace(/[^a-z]/g, ""), text: l || "-" });
  }

  function statusBadge(status) {
    const s = String(status || "");
    return el("span", { className: "badge status status-" + s.replace(/[^a-z]/g, ""), text: s || "-" });
  }

  // api fetches a JSON endpoint; an expired session goes back to the login.
  async function api(path, opts) {
    const resp = await fetch(path, Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, opts || {}));
    if (resp.status === 401) {
      location.replace("/login.html");
      throw new Error("not logged in");
    }
    let body = null;
    try { body = await resp.json(); } catch (_) { /* empty */ }
    if (!resp.ok) throw new Error((body && body.error) || resp.status + " " + resp.statusText);
    return body;
  }

  // entity returns what the list shows of an alert's event (the same
  // fields as the API's free-text search).
  function entity(a) {
    const ev = a.event || {};
    return {
      ip: first(ev, "source.ip", "client.ip", "cloudflare.ClientIP"),
      host: first(ev, "destination.address", "url.domain", "cloudflare.ClientRequestHost"),
      path: first(ev, "url.original", "url.path", "cloudflare.ClientRequestURI"),
      ua: first(ev, "user_agent.original", "cloudflare.ClientRequestUserAgent"),
      cc: first(ev, "source.geo.country_iso_code", "source.geo.country_name", "cloudflare.ClientCountry"),
    };
  }

  // version identifies what the list shows of an alert.
  function version(a) {
    return [a.count, a.status, a.last_seen, (a.status_history || []).length].join("|");
  }

  // ATT&CK technique tags (attack.t1071.001) become MITRE links.
  function techniqueOf(tag) {
    const m = /^attack\.t(\d{4})(?:\.(\d{3}))?$/i.exec(String(tag));
    if (!m) return null;
    const id = "T" + m[1] + (m[2] ? "." + m[2] : "");
    const url = "https://attack.mitre.org/techniques/T" + m[1] + "/" + (m[2] ? m[2] + "/" : "");
    return { id, url };
  }

  function tagChips(tags) {
    return (tags || []).map((t) => {
      const tech = techniqueOf(t);
      if (tech) return el("a", { className: "chip tech", href: tech.url, target: "_blank", rel: "noopener noreferrer", text: tech.id, title: "MITRE ATT&CK " + tech.id });
      return el("span", { className: "chip", text: String(t).replace(/^attack\./, "") });
    });
  }

  // ------------------------------------------------------------ filters
  const FILTERS = ["q", "rule", "level", "status", "intake", "since", "from", "to"];

  function readFilters() {
    const p = new URLSearchParams(location.search);
    const f = {};
    for (const k of FILTERS) f[k] = p.get(k) || "";
    if ((f.from || f.to) && !f.since) f.since = "custom";
    return f;
  }

  let filters = readFilters();

  function writeURL() {
    const p = new URLSearchParams();
    for (const k of FILTERS) {
      if (!filters[k]) continue;
      if ((k === "from" || k === "to") && filters.since !== "custom") continue;
      if (k === "since" && filters.since === "custom") continue;
      p.set(k, filters[k]);
    }
    const qs = p.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : "") + location.hash);
  }

  function parseDuration(s) {
    const m = /^(\d+)(m|h)$/.exec(s || "");
    if (!m) return 0;
    return Number(m[1]) * (m[2] === "h" ? 3600e3 : 60e3);
  }

  // range returns the [from, to] of the filters as Dates (or null).
  function range(f) {
    if (f.since && f.since !== "custom") {
      const d = parseDuration(f.since);
      return { from: d ? new Date(Date.now() - d) : null, to: null };
    }
    const p = (v) => {
      if (!v) return null;
      const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : v + "Z");
      return isNaN(d) ? null : d;
    };
    return { from: p(f.from), to: p(f.to) };
  }

  function apiParams(f) {
    const p = new URLSearchParams();
    for (const k of ["q", "rule", "level", "status", "intake"]) if (f[k]) p.set(k, f[k]);
    const r = range(f);
    if (r.from) p.set("from", r.from.toISOString());
    if (r.to) p.set("to", r.to.toISOString());
    return p;
  }

  // matches applies the filters to an alert that arrives over the
  // websocket, as the API applies them to stored ones.
  function matches(a, f) {
    if (f.rule && (!a.rule || a.rule.id !== f.rule)) return false;
    if (f.level && String((a.rule && a.rule.level) || "").toLowerCase() !== f.level.toLowerCase()) return false;
    if (f.status && a.status !== f.status) return false;
    if (f.intake && a.intake !== f.intake) return false;
    const r = range(f);
    if (r.from && new Date(a.last_seen) < r.from) return false;
    if (r.to && new Date(a.first_seen) > r.to) return false;
    const q = (f.q || "").trim().toLowerCase();
    if (q) {
      const e = entity(a);
      if (![e.ip, e.host, e.ua, e.path].some((v) => v.toLowerCase().includes(q))) return false;
    }
    return true;
  }

  function syncFilterForm() {
    $("f-q").value = filters.q;
    for (const k of ["rule", "level", "status", "intake", "since"]) {
      const sel = $("f-" + k);
      if (filters[k] && ![...sel.options].some((o) => o.value === filters[k])) {
        sel.appendChild(el("option", { value: filters[k], text: filters[k] }));
      }
      sel.value = filters[k];
    }
    $("f-custom").hidden = filters.since !== "custom";
    $("f-from").value = filters.from ? filters.from.replace(/Z$/, "") : "";
    $("f-to").value = filters.to ? filters.to.replace(/Z$/, "") : "";
    $("f-clear").hidden = !FILTERS.some((k) => filters[k]);
  }

  function setFilters(changes) {
    Object.assign(filters, changes);
    writeURL();
    syncFilterForm();
    list.reload();
  }

  let qTimer = 0;
  $("f-q").addEventListener("input", () => {
    clearTimeout(qTimer);
    qTimer = setTimeout(() => setFilters({ q: $("f-q").value.trim() }), 300);
  });
  for (const k of ["rule", "level", "status", "intake", "since"]) {
    $("f-" + k).addEventListener("change", () => setFilters({ [k]: $("f-" + k).value }));
  }
  for (const k of ["from", "to"]) {
    $("f-" + k).addEventListener("change", () => setFilters({ [k]: $("f-" + k).value }));
  }
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("f-clear").addEventListener("click", () => {
    const none = {};
    for (const k of FILTERS) none[k] = "";
    setFilters(none);
  });

  // ------------------------------------------------------------ alert list
  const rows = $("alert-rows");
  const list = {
    byID: new Map(), // id -> {a, tr, v}
    next: "",
    exhausted: false,
    loading: false,
    ready: false, // the first page is in
    gen: 0,
    pending: [], // websocket alerts that came before the first page
    selected: "",
    total: null,
    minID: "", // the oldest id listed: older ones come with later pages
  };

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    td.title = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function renderRow(a) {
    const e = entity(a);
    const tr = document.createElement("tr");
    tr.dataset.id = a.id;
    tr.dataset.rule = (a.rule && a.rule.id) || "";
    tr.tabIndex = -1;
    cell(tr, fmtTime(a.last_seen), "time");
    cell(tr, (a.rule && a.rule.title) || "", "rule");
    const level = String((a.rule && a.rule.level) || "").toLowerCase();
    const ltd = cell(tr, "", "level");
    ltd.appendChild(levelBadge(level));
    cell(tr, fmtNum(a.count), "count");
    const std = cell(tr, "", "status");
    std.appendChild(statusBadge(a.status));
    // Below 1,500 px the country joins the IP and the host the path (the
    // CC and Host columns give way); path and user-agent show two lines
    // at most; every cell's title holds its full value.
    const ipTd = cell(tr, e.ip, "ip");
    if (e.cc) {
      ipTd.appendChild(el("span", { className: "cc-in", text: " " + e.cc.toUpperCase() }));
      ipTd.title = e.ip + " (" + countryName(e.cc) + ")";
    }
    cell(tr, e.cc.toUpperCase(), "cc").title = countryName(e.cc);
    cell(tr, e.host, "host");
    const pathTd = cell(tr, "", "path");
    pathTd.title = e.host + e.path;
    pathTd.appendChild(el("div", { className: "clamp" }, el("span", { className: "host-in", text: e.host }), e.path));
    cell(tr, "", "ua").appendChild(el("div", { className: "clamp", text: e.ua }));
    tr.lastChild.title = e.ua;
    cell(tr, a.intake || "", "intake");
    if (a.id === list.selected) tr.classList.add("sel");
    return tr;
  }

  function oldestID() {
    return list.minID;
  }

  // sortKey orders the list newest first. Alert ids start with the start
  // of the alert's grouping slot (then a hash), so the API lists slots
  // newest first; within a slot, the list shows the latest events first.
  function sortKey(a) {
    const t = Date.parse(a.last_seen) || 0;
    return a.id.slice(0, 12) + String(t).padStart(15, "0") + a.id;
  }

  // upsert shows a (new or changed) alert in place, newest first, if it
  // passes the filters; a changed alert that no longer does goes away.
  function upsert(a, how) {
    if (!a || typeof a.id !== "string") return;
    const old = list.byID.get(a.id);
    if (!matches(a, filters)) {
      if (old) removeRow(a.id);
      return;
    }
    const v = version(a);
    if (old) {
      if (old.v === v) return;
      const tr = renderRow(a);
      tr.dataset.key = old.tr.dataset.key; // updated in place
      if (how === "live") tr.classList.add("changed");
      old.tr.replaceWith(tr);
      list.byID.set(a.id, { a, tr, v });
      if (detail.id === a.id) detail.update(a);
      return;
    }
    // An older alert than the oldest shown comes with a later page.
    if (how !== "page" && !list.exhausted && oldestID() && a.id < oldestID()) return;
    const tr = renderRow(a);
    if (how === "live") tr.classList.add("new");
    // Rows are in the order of sortKey, descending: pages, which come in
    // id order, mostly append.
    tr.dataset.key = sortKey(a);
    let before = null;
    const last = rows.lastElementChild;
    if (!last || last.dataset.key < tr.dataset.key) {
      before = rows.firstElementChild;
      while (before && before.dataset.key > tr.dataset.key) before = before.nextElementSibling;
    }
    rows.insertBefore(tr, before);
    list.byID.set(a.id, { a, tr, v });
    if (!list.minID || a.id < list.minID) list.minID = a.id;
    if (how === "live" && list.total !== null) list.total++;
  }

  function removeRow(id) {
    const old = list.byID.get(id);
    if (!old) return;
    if (list.selected === id) {
      const n = old.tr.nextElementSibling || old.tr.previousElementSibling;
      list.selected = n ? n.dataset.id : "";
      if (n) n.classList.add("sel");
    }
    old.tr.remove();
    list.byID.delete(id);
  }

  function updateCounts() {
    const n = list.byID.size;
    $("empty").hidden = n > 0 || !list.ready;
    $("empty").textContent = FILTERS.some((k) => filters[k]) ?
      "No alert matches these filters." :
      "No alerts yet. They appear here as soon as raywatch detects them.";
    let text = fmtNum(n) + (n === 1 ? " alert" : " alerts");
    if (!list.exhausted || FILTERS.some((k) => filters[k])) {
      if (list.total !== null) text += " shown of " + fmtNum(list.total);
    }
    $("count").textContent = text;
    $("load-more").hidden = list.exhausted || !list.ready;
    $("list-state").textContent = list.loading ? "loading..." : (list.exhausted && n > 0 ? "end of the list" : "");
  }

  async function loadPage() {
    if (list.loading || list.exhausted) return;
    const gen = list.gen;
    list.loading = true;
    updateCounts();
    try {
      // A very selective filter may give empty pages with a cursor: go on
      // a few times before waiting for the user to scroll.
      let got = 0;
      for (let i = 0; i < 8 && got === 0 && !list.exhausted; i++) {
        const p = apiParams(filters);
        p.set("limit", String(PAGE));
        if (list.next) p.set("cursor", list.next);
        const body = await api("/api/v1/alerts?" + p);
        if (gen !== list.gen) return;
        const t0 = performance.now();
        for (const a of body.alerts || []) upsert(a, "page");
        performance.measure("raywatch-page-render", { start: t0 });
        got += (body.alerts || []).length;
        list.next = body.next || "";
        list.exhausted = !list.next;
      }
      if (!list.ready) {
        list.ready = true;
        performance.mark("raywatch-first-rows");
        const pending = list.pending;
        list.pending = [];
        for (const a of pending) upsert(a, "live");
      }
    } catch (err) {
      if (gen === list.gen) $("list-state").textContent = "cannot load alerts: " + err.message;
    } finally {
      if (gen === list.gen) list.loading = false;
    }
    if (gen === list.gen) {
      updateCounts();
      maybeLoadMore();
    }
  }

  list.reload = function () {
    list.gen++;
    clear(rows);
    list.byID.clear();
    list.minID = "";
    list.next = "";
    list.exhausted = false;
    list.loading = false;
    list.ready = false;
    list.pending = [];
    refreshTotal();
    loadPage();
  };

  async function refreshTotal() {
    try {
      const st = await api("/api/v1/stats");
      list.total = st.alerts;
      updateCounts();
    } catch (_) { /* shown elsewhere */ }
  }

  function maxID() {
    let m = "";
    for (const id of list.byID.keys()) if (id > m) m = id;
    return m;
  }

  // catchUp reads what the websocket missed while it was down: pages from
  // the newest down to what the list already had.
  async function catchUp(topBefore) {
    const gen = list.gen;
    let cursor = "";
    for (let i = 0; i < 20; i++) {
      const p = apiParams(filters);
      p.set("limit", "200");
      if (cursor) p.set("cursor", cursor);
      let body;
      try { body = await api("/api/v1/alerts?" + p); } catch (_) { return; }
      if (gen !== list.gen) return;
      const alerts = body.alerts || [];
      for (const a of alerts) upsert(a, "live");
      cursor = body.next || "";
      if (!cursor || !topBefore || alerts.some((a) => a.id <= topBefore)) break;
    }
    refreshTotal();
    updateCounts();
  }

  const moreObserver = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) maybeLoadMore();
  }, { rootMargin: "400px" }) : null;
  if (moreObserver) moreObserver.observe($("more"));

  function maybeLoadMore() {
    if (!list.ready || list.loading || list.exhausted || currentView !== "alerts") return;
    const r = $("more").getBoundingClientRect();
    if (r.top < window.innerHeight + 400) loadPage();
  }
  $("load-more").addEventListener("click", loadPage);

  function select(id, scroll) {
    const old = list.byID.get(list.selected);
    if (old) old.tr.classList.remove("sel");
    list.selected = id || "";
    const cur = list.byID.get(list.selected);
    if (cur) {
      cur.tr.classList.add("sel");
      if (scroll) cur.tr.scrollIntoView({ block: "nearest" });
    }
  }

  function move(delta) {
    let cur = list.byID.get(list.selected);
    let tr = cur ? (delta > 0 ? cur.tr.nextElementSibling : cur.tr.previousElementSibling) : rows.firstElementChild;
    if (!tr && cur) tr = cur.tr;
    if (tr) select(tr.dataset.id, true);
    if (delta > 0 && tr && !tr.nextElementSibling) loadPage();
    return tr ? tr.dataset.id : "";
  }

  rows.addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (!tr) return;
    select(tr.dataset.id, false);
    location.hash = "#/alert/" + encodeURIComponent(tr.dataset.id);
  });

  async function setStatus(id, status, comment, reason) {
    const body = { status };
    if (comment) body.comment = comment;
    if (reason) body.reason = reason;
    const a = await api("/api/v1/alerts/" + encodeURIComponent(id), {
      method: "PATCH",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    upsert(a, "live");
    if (detail.id === a.id) detail.update(a);
    return a;
  }

  // ------------------------------------------------------------ websocket
  const conn = $("conn");
  let ws = null;
  let backoff = 500;
  let everReady = false;
  let topAtDrop = "";
  let retryTimer = 0;

  function setConn(state, text) {
    conn.className = "conn conn-" + state;
    conn.textContent = text;
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const sock = new WebSocket(proto + "//" + location.host + "/ws");
    ws = sock;
    let ready = false;
    setConn("connecting", everReady ? "reconnecting" : "connecting");
    sock.onmessage = function (e) {
      let msg;
      try { msg = JSON.parse(e.data); } catch (_) { return; }
      if (msg.type === "ready") {
        ready = true;
        backoff = 500;
        setConn("live", "live");
        updateCounts();
        if (everReady) catchUp(topAtDrop);
        everReady = true;
      } else if (msg.type === "alert" && msg.alert) {
        if (!list.ready) list.pending.push(msg.alert);
        else upsert(msg.alert, ready ? "live" : "snapshot");
        if (ready) updateCounts();
      }
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      if (!topAtDrop || ready) topAtDrop = maxID();
      // A refused websocket hides its status: ask the API whether the
      // session has expired (api() then goes to the login page).
      api("/api/v1/stats").catch(() => {});
      const wait = backoff + Math.floor(Math.random() * backoff / 4);
      backoff = Math.min(backoff * 2, 30000);
      let left = Math.ceil(wait / 1000);
      setConn("down", "disconnected, retrying in " + left + " s");
      const tick = setInterval(() => {
        left--;
        if (left > 0) setConn("down", "disconnected, retrying in " + left + " s");
      }, 1000);
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => { clearInterval(tick); connect(); }, wait);
    };
  }

  // ------------------------------------------------------------ detail
  const detail = {
    id: "",
    alert: null,
    root: $("detail"),
  };

  detail.open = async function (id) {
    if (detail.id !== id) $("d-note").hidden = true;
    detail.id = id;
    select(id, false);
    clear(detail.root).appendChild(el("p", { className: "muted", text: "loading..." }));
    try {
      const a = await api("/api/v1/alerts/" + encodeURIComponent(id));
      if (detail.id !== id) return;
      detail.render(a);
    } catch (err) {
      if (detail.id !== id) return;
      clear(detail.root).appendChild(el("p", { className: "error", text: "Cannot load alert " + id + ": " + err.message }));
    }
  };

  detail.update = function (a) {
    if (!detail.alert || version(detail.alert) === version(a)) return;
    const comment = $("d-comment");
    const keep = comment ? comment.value : "";
    // A websocket copy lacks nothing the detail shows.
    detail.render(a);
    if ($("d-comment")) $("d-comment").value = keep;
  };

  function kv(dl, key, ...value) {
    dl.appendChild(el("dt", { text: key }));
    dl.appendChild(append(el("dd"), value));
  }

  detail.render = function (a) {
    detail.alert = a;
    const root = clear(detail.root);
    const rule = a.rule || {};
    const hits = new Set((a.matches || []).map((m) => String(m.field)));

    root.appendChild(el("div", { className: "d-head" },
      el("h2", { id: "d-title", text: rule.title || rule.id || "alert" }),
      levelBadge(rule.level), " ", el("span", { id: "d-status" }, statusBadge(a.status))));
    root.appendChild(whoHeader(a));

    const facts = el("dl", { className: "facts" });
    kv(facts, "Intake", a.intake || "");
    kv(facts, "Dataset", a.dataset || "");
    kv(facts, "Alert id", el("code", { text: a.id }));
    kv(facts, "Rule id", el("code", { text: rule.id || "" }));
    if (a.retro) kv(facts, "Found by", el("span", { className: "chip", id: "d-retro", text: "retro-hunt" }), " of the batch archive, after the event");
    if (a.replayed) kv(facts, "Found by", el("span", { className: "chip", text: "raywatch replay" }), " of archived logs");
    if (a.group && Object.keys(a.group).length) {
      kv(facts, "Grouped by", Object.entries(a.group).map(([k, v]) => el("span", { className: "chip", text: k + " = " + v })));
    }
    root.appendChild(facts);

    // Actions.
    const comment = el("textarea", { id: "d-comment", rows: 2, maxLength: 1000, placeholder: "Comment (optional), kept in the history" });
    const msg = el("span", { id: "d-msg", className: "muted", role: "status" });
    const act = (status, label, id) => {
      const b = el("button", { type: "button", id, text: label, disabled: a.status === status && status !== "new" ? true : false });
      b.addEventListener("click", async () => {
        msg.textContent = "saving...";
        try {
          await setStatus(a.id, status, comment.value.trim());
          const m = $("d-msg");
          if (m) m.textContent = "status: " + status;
        } catch (err) {
          msg.textContent = "cannot save: " + err.message;
        }
      });
      return b;
    };
    const closeBtn = el("button", { type: "button", id: "d-close", text: "Close...", title: "Close with a verdict", disabled: a.status === "closed" });
    closeBtn.addEventListener("click", () => openCloseDialog(a));
    const excBtn = el("button", { type: "button", id: "d-except", text: "Add exception...", title: "Stop this rule (or every rule) alerting on these values" });
    excBtn.addEventListener("click", () => openExceptionDialog(a));
    root.appendChild(el("div", { className: "actions" }, comment,
      el("div", { className: "buttons" },
        act("acknowledged", "Acknowledge (a)", "d-ack"), closeBtn,
        act("new", "Reopen", "d-reopen"), excBtn, msg)));
    if ((a.status_history || []).length) {
      const ol = el("ol", { className: "history", id: "d-history" });
      for (const h of a.status_history) {
        ol.appendChild(el("li", null, fmtTime(h.at) + " UTC ", statusBadge(h.status),
          h.reason ? el("span", { className: "chip reason", text: reasonLabel(h.reason) }) : "", " by ", el("b", { text: h.by || "?" }),
          h.comment ? el("q", { className: "comment", text: h.comment }) : ""));
      }
      root.appendChild(el("h3", { text: "History" }));
      root.appendChild(ol);
    }

    root.appendChild(blockSection(a));

    // Rule.
    const rsec = el("section", { className: "card" }, el("h3", { text: "Rule" }));
    if (rule.description) rsec.appendChild(el("p", { className: "desc", text: rule.description }));
    if ((rule.tags || []).length) rsec.appendChild(el("p", { className: "tags" }, "ATT&CK and tags: ", tagChips(rule.tags)));
    if ((rule.references || []).length) {
      rsec.appendChild(el("ul", { className: "refs" }, rule.references.map((r) => el("li", null, extLink(r)))));
    }
    root.appendChild(rsec);

    // Matches.
    const msec = el("section", { className: "card" }, el("h3", { text: "Matched fields" }));
    const mt = el("table", { className: "kv matches" });
    for (const m of a.matches || []) {
      const val = typeof m.value === "object" ? JSON.stringify(m.value) : String(m.value ?? "");
      mt.appendChild(el("tr", { className: "hit" }, el("th", { text: m.field }), el("td", { className: "mono", text: val })));
    }
    if (!(a.matches || []).length) mt.appendChild(el("tr", null, el("td", { className: "muted", text: "(the rule reported no field)" })));
    msec.appendChild(mt);
    for (const m of a.matches || []) {
      if (!m.indicator) continue;
      const ind = m.indicator;
      const box = el("div", { className: "ioc" }, el("h4", { text: "Indicator of compromise" }));
      const dl = el("dl", { className: "facts" });
      kv(dl, "Type", ind.type || "");
      kv(dl, "Value", el("code", { text: ind.value || "" }));
      kv(dl, "File", el("code", { text: (ind.file || "") + (ind.line ? ":" + ind.line : "") }));
      const meta = ind.meta || {};
      for (const [k, v] of Object.entries(meta)) {
        const text = Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : String(v);
        kv(dl, k.replace(/_/g, " "), /^https?:\/\//i.test(text) && k.includes("url") ? extLink(text) : text);
      }
      box.appendChild(dl);
      msec.appendChild(box);
    }
    root.appendChild(msec);

    // Event.
    const esec = el("section", { className: "card" }, el("h3", { text: "Event (ECS)" }));
    const raw = JSON.stringify(a.event || {}, null, 2);
    const copy = el("button", { type: "button", id: "d-copy", className: "ghost", text: "Copy JSON" });
    copy.addEventListener("click", () => copyText(raw, copy));
    const tabs = el("div", { className: "tabs" });
    const treeBtn = el("button", { type: "button", className: "tab on", text: "Tree" });
    const rawBtn = el("button", { type: "button", className: "tab", text: "Raw JSON" });
    const treeBox = el("div", { id: "d-tree", className: "tree-box" }, tree(a.event || {}, "", hits));
    const rawBox = el("pre", { id: "d-raw", className: "raw", text: raw, hidden: true });
    treeBtn.addEventListener("click", () => { treeBox.hidden = false; rawBox.hidden = true; treeBtn.classList.add("on"); rawBtn.classList.remove("on"); });
    rawBtn.addEventListener("click", () => { treeBox.hidden = true; rawBox.hidden = false; rawBtn.classList.add("on"); treeBtn.classList.remove("on"); });
    append(tabs, [treeBtn, rawBtn, copy]);
    append(esec, [tabs, treeBox, rawBox]);
    root.appendChild(esec);

    // Samples.
    const samples = a.samples || [];
    if (samples.length > 1) {
      const st = el("table", { className: "samples" },
        el("thead", null, el("tr", null, ["Time (UTC)", "Source IP", "Host", "Path", "User-agent"].map((h) => el("th", { text: h })))));
      const tb = el("tbody");
      for (const s of samples) {
        const e = entity({ event: s.event || {} });
        tb.appendChild(el("tr", null, [fmtTime(s.time), e.ip, e.host, e.path, e.ua].map((v) => el("td", { text: v, title: v }))));
      }
      st.appendChild(tb);
      root.appendChild(el("section", { className: "card" },
        el("h3", { text: "Sample events (" + samples.length + " of " + fmtNum(a.count) + ")" }), st));
    }
  };

  // ------------------------------------------------------------ edge block list
  // blockSection shows whether the alert's source address is on the edge
  // block list (serve --block-list), until when and why, with "Block now"
  // or "Unblock". It stays hidden when raywatch has no block list.
  function blockSection(a) {
    const sec = el("section", { className: "card block-card", id: "d-block", hidden: true }, el("h3", { text: "Edge block list" }));
    const ip = entity(a).ip;
    if (!ip) return sec;
    const body = el("div", { id: "d-block-body" });
    sec.appendChild(body);
    const load = async () => {
      let rep;
      try {
        rep = await api("/api/v1/blocks?limit=5&ip=" + encodeURIComponent(ip));
      } catch (err) {
        if (/no such API endpoint/.test(err.message)) return; // no block list
        sec.hidden = false;
        clear(body).appendChild(el("p", { className: "error", text: "Cannot read the block list: " + err.message }));
        return;
      }
      sec.hidden = false;
      renderBlock(body, rep, a, ip, load);
    };
    load();
    return sec;
  }

  function renderBlock(body, rep, a, ip, reload) {
    clear(body);
    const entry = (rep.entries || [])[0];
    const hold = (rep.holds || [])[0];
    const listName = el("code", { text: rep.list || "" });
    const msg = el("span", { id: "d-block-msg", className: "muted", role: "status" });
    const ttlHours = Math.round((rep.ttl_seconds || 0) / 3600);
    if (rep.dry_run) body.appendChild(el("p", { className: "muted", text: "Dry run (--block-dry-run): Cloudflare's list is never changed; entries show what would be listed." }));
    if (entry) {
      body.appendChild(el("p", { id: "d-block-state", className: "listed" },
        el("b", { text: entry.address }), " is on ", listName, entry.dry_run ? " (dry run)" : "", " until ",
        el("b", { text: fmtTime(entry.until) + " UTC" }), ", listed by ", el("b", { text: entry.who || "?" }),
        entry.reason ? [": ", el("q", { className: "comment", text: entry.reason })] : ""));
      const reason = el("input", { id: "d-unblock-reason", type: "text", maxLength: 256, placeholder: "Reason (optional)" });
      const btn = el("button", { type: "button", id: "d-unblock", text: "Unblock" });
      btn.addEventListener("click", async () => {
        if (!window.confirm("Take " + entry.address + " off the Cloudflare list " + (rep.list || "") + "? Its requests will reach the zone again, and the rules will not list it again for " + ttlHours + " hours.")) return;
        await blockCall(msg, "/api/v1/blocks/" + encodeURIComponent(entry.address), "DELETE", { reason: reason.value.trim() }, reload);
      });
      body.appendChild(el("div", { className: "buttons" }, reason, btn, msg));
    } else {
      body.appendChild(el("p", { id: "d-block-state", className: "muted" }, el("b", { text: ip }), " is not on ", listName, "."));
      if (hold) {
        body.appendChild(el("p", { className: "muted", text: "Unblocked by " + (hold.who || "?") + ": the rules will not list it again before " + fmtTime(hold.until) + " UTC." }));
      }
      const reason = el("input", { id: "d-block-reason", type: "text", maxLength: 256, placeholder: "Reason (optional)" });
      const btn = el("button", { type: "button", id: "d-block-now", text: "Block now" });
      btn.addEventListener("click", async () => {
        if (!window.confirm("Block " + ip + " at Cloudflare's edge for " + ttlHours + " hours? The WAF rule that uses the list " + (rep.list || "") + " blocks or challenges every request from it (an IPv6 address: its whole /64), customers behind the same address included.")) return;
        await blockCall(msg, "/api/v1/blocks", "POST", { ip: ip, reason: reason.value.trim(), alert: a.id }, reload);
      });
      body.appendChild(el("div", { className: "buttons" }, reason, btn, msg));
    }
    const audit = rep.audit || [];
    if (audit.length) {
      const ol = el("ol", { className: "history", id: "d-block-audit" });
      for (const r of audit) {
        ol.appendChild(el("li", null, fmtTime(r.at) + " UTC ", el("span", { className: "badge", text: r.action }), " by ",
          el("b", { text: r.who || "?" }), r.dry_run ? " (dry run)" : "", r.reason ? el("q", { className: "comment", text: r.reason }) : ""));
      }
      body.appendChild(ol);
    }
  }

  async function blockCall(msg, path, method, body, reload) {
    msg.textContent = "saving...";
    try {
      await api(path, { method, headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) });
      msg.textContent = "";
      reload();
    } catch (err) {
      msg.textContent = "cannot: " + err.message;
      msg.className = "error";
    }
  }

  // whoHeader is the top of an alert's page: who (source IP, its country
  // and network) did what where (method, host, path, user-agent), how
  // often and when.
  function whoHeader(a) {
    const ev = a.event || {};
    const e = entity(a);
    const method = first(ev, "http.request.method", "cloudflare.ClientRequestMethod");
    const asn = first(ev, "source.as.number", "cloudflare.ClientASN");
    const asName = first(ev, "source.as.organization.name", "cloudflare.clientASNDescription", "cloudflare.ClientASNDescription");
    const box = el("div", { className: "who", id: "d-who" });
    const item = (label, id, ...value) => box.appendChild(el("div", { className: "who-item" },
      el("div", { className: "who-k", text: label }), append(el("div", { className: "who-v", id }), value)));
    item("Source IP", "d-ip", el("span", { className: "mono big", text: e.ip || "-" }),
      e.cc ? el("div", { id: "d-country", text: countryName(e.cc) + " (" + e.cc.toUpperCase() + ")" }) : "",
      asn ? el("div", { className: "muted", id: "d-asn", text: "AS" + asn + (asName ? " " + asName : "") }) : "");
    item("Host", "d-host", el("span", { className: "mono", text: e.host || "-" }));
    item("Request", "d-req", method ? el("strong", { text: method + " " }) : "", el("span", { className: "mono", text: e.path || "-" }));
    item("User-agent", "d-ua", el("span", { className: "mono", text: e.ua || "(none)" }));
    item("Events", "d-events", el("span", { className: "big", id: "d-count", text: fmtNum(a.count) }), a.count === 1 ? " event" : " events",
      el("div", { className: "muted", id: "d-range", text: rangeText(a.first_seen, a.last_seen) }));
    return box;
  }

  // note shows a message above the alert's page that survives its
  // re-rendering (an alert closed by a new exception changes at once).
  function note(...children) {
    const n = $("d-note");
    append(clear(n), children);
    n.hidden = false;
  }

  // openCloseDialog asks for the verdict (and a comment) before closing
  // alert a.
  function openCloseDialog(a) {
    const dlg = clear($("close-dlg"));
    const form = el("form", { id: "close-form", method: "dialog" });
    const reasons = el("fieldset", { className: "reasons" }, el("legend", { text: "Verdict" }),
      REASONS.map(([v, label, help]) => el("label", null,
        el("input", { type: "radio", name: "reason", value: v, id: "close-" + v }), " ", el("b", { text: label }), " ", el("span", { className: "muted small", text: help }))));
    const c = $("d-comment");
    const comment = el("textarea", { id: "close-comment", rows: 2, maxLength: 1000, placeholder: "Comment (optional), kept in the history", value: c ? c.value : "" });
    const msg = el("p", { id: "close-msg", className: "error", role: "status" });
    const ok = el("button", { type: "submit", id: "close-ok", text: "Close alert" });
    const cancel = el("button", { type: "button", className: "ghost", text: "Cancel" });
    cancel.addEventListener("click", () => dlg.close());
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const r = form.querySelector("input[name=reason]:checked");
      if (!r) {
        msg.textContent = "Pick a verdict.";
        return;
      }
      ok.disabled = true;
      try {
        await setStatus(a.id, "closed", comment.value.trim(), r.value);
        dlg.close();
        note("Closed as " + reasonLabel(r.value).toLowerCase() + ".");
      } catch (err) {
        msg.textContent = "Cannot close: " + err.message;
      } finally {
        ok.disabled = false;
      }
    });
    append(form, [el("h3", { id: "close-title", text: "Close this alert" }),
      el("p", { className: "muted small", text: "The verdict is kept in the alert's history and counted per rule: the Rules page shows how often each rule's alerts are false positives." }),
      reasons, comment, msg, el("div", { className: "buttons" }, ok, cancel)]);
    dlg.appendChild(form);
    dlg.showModal();
  }

  // The conditions an exception may put on a field: IP fields take
  // addresses and CIDR ranges, text fields compare ignoring case.
  const EXC_OPS = {
    ip: [["", "is"], ["cidr", "is in the CIDR range"]],
    text: [["", "is"], ["contains", "contains"], ["startswith", "starts with"], ["endswith", "ends with"]],
  };
  const OP_WORDS = { "": "is", cidr: "is in", contains: "contains", startswith: "starts with", endswith: "ends with" };

  // exceptionFields are the entity fields of alert a that an exception
  // may test, with their values.
  // The fields the rule matched come after, not kept by default.
  function exceptionFields(a) {
    const ev = a.event || {};
    const out = [];
    const add = (field, label, ip, on) => {
      const v = get(ev, field);
      if (v !== "" && !out.some((f) => f.field === field)) out.push({ field, label, ip, value: v, on });
    };
    add("source.ip", "Source IP", true, true);
    add(get(ev, "url.domain") !== "" ? "url.domain" : "destination.address", "Host", false, true);
    add("url.path", "Path", false, true);
    add("user_agent.original", "User-agent", false, true);
    for (const m of a.matches || []) {
      const f = String(m.field || "");
      if (/^[A-Za-z0-9_@.]+$/.test(f)) add(f, "Matched field", /(^|\.)ip$|IP$/.test(f), false);
    }
    return out;
  }

  // expiryTime turns the expiry choice into an RFC 3339 time, or null.
  function expiryTime(choice, at) {
    if (!choice) return null;
    if (choice === "custom") {
      const d = at ? new Date(at + "Z") : null;
      return d && !isNaN(d) ? d.toISOString() : null;
    }
    return new Date(Date.now() + parseDuration(choice)).toISOString();
  }

  // openExceptionDialog builds an exception from alert a's entity: each
  // condition can be left out or changed, the scope is the rule or every
  // rule, a comment is required, the expiry optional; the matching open
  // alerts may be closed at once.
  function openExceptionDialog(a) {
    const rule = a.rule || {};
    const dlg = clear($("exc-dlg"));
    const form = el("form", { id: "exc-form", method: "dialog" });
    const rows = [];
    const tb = el("tbody");
    for (const f of exceptionFields(a)) {
      const id = "exc-on-" + f.field.replace(/[^a-z]/g, "-");
      const on = el("input", { type: "checkbox", checked: f.on, id });
      const op = el("select", { className: "exc-op", "aria-label": f.label + ": condition" }, (f.ip ? EXC_OPS.ip : EXC_OPS.text).map(([v, l]) => el("option", { value: v, text: l })));
      const val = el("input", { type: "text", className: "exc-val mono", value: f.value, spellcheck: false, "aria-label": f.label + ": value" });
      rows.push({ f, on, op, val });
      tb.appendChild(el("tr", { data: { field: f.field } }, el("td", null, on),
        el("td", null, el("label", { htmlFor: id, text: f.label }), el("div", { className: "muted small mono", text: f.field })),
        el("td", null, op), el("td", { className: "grow" }, val)));
    }
    const conds = el("table", { className: "conds", id: "exc-conds" }, tb);
    const scope = el("fieldset", { className: "scope" }, el("legend", { text: "Applies to" }),
      el("label", null, el("input", { type: "radio", name: "scope", value: rule.id || "", checked: true, id: "exc-scope-rule" }), " this rule: ", el("b", { text: rule.title || rule.id || "" })),
      el("label", null, el("input", { type: "radio", name: "scope", value: "*", id: "exc-scope-all" }), " every rule"));
    const comment = el("textarea", { id: "exc-comment", rows: 2, maxLength: 1000, placeholder: "Why (required): the scanner we pay for, a health check, a partner's crawler..." });
    const expiry = el("select", { id: "exc-expiry", "aria-label": "Expires" },
      [["", "never"], ["1h", "in 1 hour"], ["24h", "in 24 hours"], ["168h", "in 7 days"], ["720h", "in 30 days"], ["custom", "at (UTC)..."]].map(([v, l]) => el("option", { value: v, text: l })));
    const at = el("input", { type: "datetime-local", id: "exc-at", step: 1, hidden: true, "aria-label": "Expires at (UTC)" });
    const closeBox = el("input", { type: "checkbox", id: "exc-close", checked: true });
    const closeReason = el("select", { id: "exc-close-reason", "aria-label": "Verdict for the closed alerts" }, REASONS.map(([v, l]) => el("option", { value: v, text: l })));
    const preview = el("pre", { id: "exc-preview", className: "raw small" });
    const msg = el("p", { id: "exc-msg", className: "error", role: "status" });
    const ok = el("button", { type: "submit", id: "exc-ok", text: "Add exception" });
    const cancel = el("button", { type: "button", className: "ghost", text: "Cancel" });
    const body = () => {
      const match = {};
      for (const r of rows) {
        const raw = r.val.value.trim();
        if (!r.on.checked || !raw) continue;
        const vals = r.f.ip ? raw.split(/[\s,]+/).filter(Boolean) : [raw];
        match[r.f.field + (r.op.value ? "|" + r.op.value : "")] = vals.length === 1 ? vals[0] : vals;
      }
      const b = { rule: form.querySelector("input[name=scope]:checked").value, match, comment: comment.value.trim() };
      const exp = expiryTime(expiry.value, at.value);
      if (exp) b.expires = exp;
      if (closeBox.checked) {
        b.close_matching = true;
        b.close_reason = closeReason.value;
      }
      return b;
    };
    const update = () => {
      at.hidden = expiry.value !== "custom";
      closeReason.disabled = !closeBox.checked;
      for (const r of rows) r.op.disabled = r.val.disabled = !r.on.checked;
      preview.textContent = "POST /api/v1/exceptions\n" + JSON.stringify(body(), null, 2);
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    cancel.addEventListener("click", () => dlg.close());
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const b = body();
      if (!Object.keys(b.match).length) {
        msg.textContent = "Keep at least one condition.";
        return;
      }
      if (!b.comment) {
        msg.textContent = "Say why in the comment.";
        comment.focus();
        return;
      }
      ok.disabled = true;
      msg.textContent = "";
      try {
        const x = await api("/api/v1/exceptions", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(b),
        });
        dlg.close();
        const n = x.closed_alerts || 0;
        note("Exception added", b.close_matching ? " and " + n + (n === 1 ? " open alert" : " open alerts") + " closed" : "",
          ". ", el("a", { href: "#/exceptions", id: "d-note-link", text: "See the exceptions" }));
      } catch (err) {
        msg.textContent = "Cannot add the exception: " + err.message;
      } finally {
        ok.disabled = false;
      }
    });
    append(form, [
      el("h3", { id: "exc-title", text: "Add exception" }),
      el("p", { className: "muted small", text: "From the next event on, events that meet every kept condition raise no alert of the rules it applies to. Matching is case-insensitive." }),
      conds, scope,
      el("label", { className: "stack" }, "Comment ", comment),
      el("div", { className: "row" }, el("label", null, "Expires ", expiry), at),
      el("div", { className: "row" }, el("label", null, closeBox, " Close the matching open alerts as "), closeReason),
      el("details", null, el("summary", { text: "API request" }), preview),
      msg, el("div", { className: "buttons" }, ok, cancel)]);
    dlg.appendChild(form);
    update();
    dlg.showModal();
    comment.focus();
  }

  // tree renders a JSON value as nested lists; leaves whose dotted path is
  // a matched field are highlighted.
  function tree(v, path, hits) {
    const ul = el("ul", { className: "tree" });
    for (const [k, x] of Object.entries(v)) {
      const p = path ? path + "." + k : k;
      const li = el("li");
      if (x !== null && typeof x === "object" && !(Array.isArray(x) && x.every((y) => y === null || typeof y !== "object"))) {
        const det = el("details", { open: true }, el("summary", null, el("span", { className: "k", text: k })));
        det.appendChild(tree(x, p, hits));
        if ([...hits].some((h) => h.startsWith(p + "."))) det.classList.add("has-hit");
        li.appendChild(det);
      } else {
        const text = Array.isArray(x) ? "[" + x.map((y) => JSON.stringify(y)).join(", ") + "]" : typeof x === "string" ? x : JSON.stringify(x);
        li.appendChild(el("span", { className: "k", text: k }));
        li.appendChild(el("span", { className: "v" + (typeof x === "string" ? " s" : ""), text }));
        li.dataset.path = p;
        if (hits.has(p)) {
          li.classList.add("hit");
          li.title = "matched by the rule";
        }
      }
      ul.appendChild(li);
    }
    return ul;
  }

  function copyText(text, btn) {
    const done = (ok) => {
      const old = btn.textContent;
      btn.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { btn.textContent = old; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => done(true), () => done(fallbackCopy(text)));
    } else {
      done(fallbackCopy(text));
    }
  }

  function fallbackCopy(text) {
    const ta = el("textarea", { value: text, readOnly: true, className: "offscreen" });
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    ta.remove();
    return ok;
  }

  // ------------------------------------------------------------ overview
  let ovTimer = 0;

  async function renderOverview() {
    clearTimeout(ovTimer);
    const rng = $("ov-range").value;
    const root = $("overview");
    let ov, stats, layer, jobs, outs, retro;
    try {
      [ov, stats, layer, jobs, outs, retro] = await Promise.all([
        api("/api/v1/overview?range=" + encodeURIComponent(rng)),
        api("/api/v1/stats"),
        api("/api/v1/attack/layer"),
        api("/api/v1/jobs").catch(() => null),
        api("/api/v1/outputs").catch(() => null),
        api("/api/v1/retro").catch(() => null),
      ]);
    } catch (err) {
      clear(root).appendChild(el("p", { className: "error", text: "Cannot load the overview: " + err.message }));
      return;
    }
    if (currentView !== "overview") return;
    clear(root);
    $("ov-span").textContent = fmtTime(ov.from) + " to " + fmtTime(ov.to) + " UTC" + (ov.truncated ? " (newest alerts only)" : "");

    const cards = el("div", { className: "cards" });
    const card = (label, value, cls, href) => {
      const c = el(href ? "a" : "div", { className: "kpi " + (cls || ""), href }, el("div", { className: "kpi-v", text: fmtNum(value) }), el("div", { className: "kpi-l", text: label }));
      cards.appendChild(c);
    };
    card("alerts in range", ov.alerts);
    card("events in range", ov.events);
    for (const l of ["critical", "high", "medium"]) if (ov.by_level[l]) card(l, ov.by_level[l], "level-" + l, "?level=" + l + "#/");
    const bs = (stats && stats.by_status) || {};
    card("new (all time)", bs.new || 0, "", "?status=new#/");
    card("acknowledged", bs.acknowledged || 0, "", "?status=acknowledged#/");
    card("closed", bs.closed || 0, "", "?status=closed#/");
    root.appendChild(cards);
    const outPanel = outs && outputsPanel(outs);
    if (outPanel && outPanel.classList.contains("trouble")) root.appendChild(outPanel);

    root.appendChild(el("section", { className: "card" }, el("h3", { text: "Alerts over time (by first event)" }), chart(ov)));

    const grid = el("div", { className: "grid3" });
    grid.appendChild(topTable("Top rules", ov.top_rules, (t) => t.label || t.key, (t) => "?rule=" + encodeURIComponent(t.key) + "#/"));
    grid.appendChild(topTable("Top source IPs", ov.top_sources, (t) => t.key, (t) => "?q=" + encodeURIComponent(t.key) + "#/"));
    grid.appendChild(topTable("Top countries", ov.top_countries, (t) => t.key.toUpperCase(), null));
    root.appendChild(grid);

    // ATT&CK coverage of the enabled rules.
    const techs = (layer.techniques || []).filter((t) => typeof t.score === "number");
    const att = el("section", { className: "card", id: "attack" },
      el("div", { className: "toolbar" }, el("h3", { text: "ATT&CK coverage of the enabled rules" }),
        el("a", { className: "button", id: "layer-export", href: "/api/v1/attack/layer", download: "raywatch-attack-layer.json", text: "Export ATT&CK Navigator layer (JSON)" })));
    if (!techs.length) att.appendChild(el("p", { className: "muted", text: "No enabled rule carries an ATT&CK technique tag." }));
    else {
      const t = el("table", { className: "attack" }, el("thead", null, el("tr", null, ["Technique", "Tactics", "Rules"].map((h) => el("th", { text: h })))));
      const tb = el("tbody");
      for (const tc of techs) {
        const tech = techniqueOf("attack." + tc.techniqueID.toLowerCase());
        const meta = tc.metadata || [];
        const name = (meta.find((m) => m.name === "technique") || {}).value;
        tb.appendChild(el("tr", null,
          el("td", null, tech ? el("a", { href: tech.url, target: "_blank", rel: "noopener noreferrer", text: tc.techniqueID }) : tc.techniqueID,
            name ? el("span", { className: "tech-name", text: " " + name }) : ""),
          el("td", null, meta.filter((m) => m.name === "tactic").map((m) => el("span", { className: "chip", text: m.value }))),
          el("td", null, el("span", { className: "score", text: String(tc.score) }), " ", meta.filter((m) => m.name === "rule").map((m) => m.value).join("; "))));
      }
      t.appendChild(tb);
      att.appendChild(t);
    }
    root.appendChild(att);

    if (outPanel && !outPanel.parentNode) root.appendChild(outPanel);
    if (jobs && jobs.enabled) root.appendChild(jobsPanel(jobs));
    if (retro && retro.archive && retro.archive.enabled) root.appendChild(archivePanel(retro.archive));
    ovTimer = setTimeout(() => { if (currentView === "overview") renderOverview(); }, 15000);
  }

  function topTable(title, entries, label, href) {
    const sec = el("section", { className: "card" }, el("h3", { text: title }));
    if (!(entries || []).length) {
      sec.appendChild(el("p", { className: "muted", text: "nothing in this range" }));
      return sec;
    }
    const max = Math.max(...entries.map((e) => e.alerts), 1);
    const t = el("table", { className: "top" });
    for (const e of entries) {
      const name = label(e);
      const bar = el("div", { className: "bar" });
      bar.appendChild(svgBar(e.alerts / max));
      t.appendChild(el("tr", null,
        el("td", { className: "name", title: name }, href ? el("a", { href: href(e), text: name }) : name),
        el("td", { className: "num", text: fmtNum(e.alerts), title: fmtNum(e.events) + " events" }),
        el("td", { className: "barcell" }, bar)));
    }
    sec.appendChild(t);
    return sec;
  }

  function svgBar(frac) {
    const s = svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", class: "hbar" });
    s.appendChild(svg("rect", { x: 0, y: 0, width: Math.max(1, Math.round(frac * 100)), height: 10 }));
    return s;
  }

  // chart draws the alert series as stacked bars by level, in SVG built
  // with DOM calls.
  function chart(ov) {
    const series = ov.series || [];
    const W = 960, H = 220, L = 44, B = 26, T = 10;
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-label": "Alerts over time" });
    const max = Math.max(1, ...series.map((b) => b.alerts));
    const step = niceStep(max);
    const top = Math.ceil(max / step) * step;
    const y = (v) => H - B - (v / top) * (H - B - T);
    for (let v = 0; v <= top; v += step) {
      s.appendChild(svg("line", { x1: L, x2: W, y1: y(v), y2: y(v), class: "grid" }));
      const t = svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" });
      t.textContent = fmtNum(v);
      s.appendChild(t);
    }
    const bw = (W - L) / Math.max(1, series.length);
    series.forEach((b, i) => {
      let base = 0;
      const x = L + i * bw + 1;
      for (const l of LEVELS.slice().reverse()) {
        const n = (b.by_level || {})[l] || 0;
        if (!n) continue;
        const r = svg("rect", { x, y: y(base + n), width: Math.max(1, bw - 2), height: y(base) - y(base + n), class: "bar-" + l });
        const tt = svg("title");
        tt.textContent = fmtTime(b.start) + " UTC: " + n + " " + l;
        r.appendChild(tt);
        s.appendChild(r);
        base += n;
      }
      const other = b.alerts - base;
      if (other > 0) {
        const r = svg("rect", { x, y: y(base + other), width: Math.max(1, bw - 2), height: y(base) - y(base + other), class: "bar-other" });
        s.appendChild(r);
      }
      const every = Math.ceil(series.length / 6);
      if (i % every === 0) {
        const t = svg("text", { x: x, y: H - 8, class: "axis" });
        t.textContent = fmtTime(b.start).slice(5, 16);
        s.appendChild(t);
      }
    });
    const legend = el("div", { className: "legend" }, LEVELS.map((l) => el("span", { className: "lg lg-" + l, text: l })));
    return el("div", null, s, legend);
  }

  function niceStep(max) {
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return Math.max(1, m * mag);
    return Math.max(1, 10 * mag);
  }

  function jobsPanel(jobs) {
    const sec = el("section", { className: "card", id: "jobs" }, el("h3", { text: "Cloudflare Logpush jobs" }));
    if (jobs.error) sec.appendChild(el("p", { className: "error", text: "Cloudflare API: " + jobs.error }));
    if (!(jobs.jobs || []).length) sec.appendChild(el("p", { className: "muted", text: "No Logpush job points at this raywatch." }));
    else {
      const t = el("table", null, el("thead", null, el("tr", null, ["Job", "Dataset", "Intake", "Enabled", "Last complete", "Last error", "Last batch here", "State"].map((h) => el("th", { text: h })))));
      const tb = el("tbody");
      for (const j of jobs.jobs) {
        const bad = j.warning || (j.error_message && j.last_error && j.last_error > (j.last_complete || ""));
        tb.appendChild(el("tr", { className: bad ? "warn-row" : "" },
          el("td", { text: (j.name || "") + " (" + j.id + ")" }), el("td", { text: j.dataset || "" }), el("td", { text: j.intake || "-" }),
          el("td", { text: j.enabled ? "yes" : "no" }), el("td", { text: fmtTime(isZero(j.last_complete) ? "" : j.last_complete) }),
          el("td", { text: fmtTime(isZero(j.last_error) ? "" : j.last_error) + (j.error_message ? " " + j.error_message : "") }),
          el("td", { text: fmtTime(j.last_batch || "") }), el("td", { text: j.warning || "ok" })));
      }
      t.appendChild(tb);
      sec.appendChild(t);
    }
    if (jobs.checked && !isZero(jobs.checked)) sec.appendChild(el("p", { className: "muted", text: "checked " + fmtTime(jobs.checked) + " UTC" }));
    return sec;
  }

  // outputsPanel shows the notification outputs (GET /api/v1/outputs):
  // state, queue, last success and error, drops. A panel with an output in
  // trouble (retrying, or deliveries dropped or refused) has the class
  // "trouble" and goes to the top of the overview.
  function outputsPanel(rep) {
    const outs = rep.outputs || [];
    const sec = el("section", { className: "card", id: "outputs" }, el("h3", { text: "Notification outputs" }));
    if (!outs.length) {
      sec.appendChild(el("p", { className: "muted", text: "No output: alerts reach only this dashboard. --alertmanager-url, --webhook-url and --syslog-addr send them on (docs/outputs.md)." }));
      return sec;
    }
    const dropped = outs.reduce((n, o) => n + (o.dropped || 0), 0);
    if (dropped) sec.appendChild(el("p", { className: "error", text: "The outbox was full (--outbox-max): " + fmtNum(dropped) + " deliveries were dropped, the oldest first." }));
    const t = el("table", null, el("thead", null, el("tr", null,
      ["Output", "State", "Queue", "Last success", "Last error", "Delivered", "Retried", "Refused", "Dropped"].map((h) => el("th", { text: h })))));
    const tb = el("tbody");
    let trouble = dropped > 0;
    for (const o of outs) {
      const bad = o.state === "retrying" || o.dropped > 0 || o.failed > 0;
      trouble = trouble || bad;
      const name = el("td", null, o.name, " ", levelBadge(o.min_level), el("div", { className: "muted", text: o.target || "" }));
      const state = el("td", { className: "out-state" }, el("span", { className: "chip " + (o.state === "retrying" ? "bad" : o.state === "ok" ? "ok" : ""), text: o.state || "-" }));
      if (o.state === "retrying" && !isZero(o.next_attempt)) state.appendChild(el("div", { className: "muted", title: fmtTime(o.next_attempt), text: "next try " + fmtTime(o.next_attempt).slice(11) }));
      if (o.active) state.appendChild(el("div", { className: "muted", text: fmtNum(o.active) + " firing" }));
      const queue = el("td", { className: "num" }, el("span", { className: "out-queue", text: fmtNum(o.queue) }));
      if (!isZero(o.oldest)) queue.appendChild(el("div", { className: "muted", text: "oldest " + fmtTime(o.oldest) }));
      tb.appendChild(el("tr", { className: bad ? "warn-row" : "", data: { output: o.name } },
        name, state, queue,
        el("td", { text: isZero(o.last_success) ? "never" : fmtTime(o.last_success) }),
        el("td", { className: "out-error", text: o.last_error ? fmtTime(o.last_error_at) + " " + o.last_error : "" }),
        el("td", { className: "num", text: fmtNum(o.delivered) }), el("td", { className: "num", text: fmtNum(o.retried) }),
        el("td", { className: "num", text: fmtNum(o.failed) }), el("td", { className: "num out-dropped", text: fmtNum(o.dropped) })));
    }
    t.appendChild(tb);
    sec.appendChild(t);
    sec.appendChild(el("p", { className: "muted", text: "UTC. Delivered and retried count since raywatch started; refused (4xx) and dropped since the store was created." }));
    if (trouble) sec.classList.add("trouble");
    return sec;
  }

  function isZero(t) {
    return !t || String(t).startsWith("0001-01-01");
  }

  $("ov-range").addEventListener("change", renderOverview);

  // ------------------------------------------------------------ rules
  // ruleInfo maps rule ids to their titles, for the exceptions page.
  const ruleInfo = new Map();

  function keepRuleInfo(rs) {
    for (const r of rs || []) ruleInfo.set(r.id, r.title || r.id);
  }

  function pct(x) {
    return typeof x === "number" && x > 0 ? (x < 0.001 ? "<0.1%" : (x * 100).toFixed(1) + "%") : "-";
  }

  // healthCells say whether a rule can fire; a rule that cannot is never
  // evaluated, so its cell says why and where across the quality columns.
  function healthCells(r) {
    const h = r.health || {};
    if (h.state !== "unable_to_fire") return [el("td", { className: "health" }, el("span", { className: "chip ok", text: "ok" })), qualityCells(r)];
    const where = (h.file || "") + (h.line ? ":" + h.line : "");
    return el("td", { className: "health unable-why", colSpan: 5 }, el("span", { className: "chip bad", text: "unable to fire" }), " ",
      el("span", { text: h.reason || "" }), where ? el("div", null, el("code", { className: "small src", text: where })) : "",
      el("div", { className: "muted small", text: "not evaluated" }));
  }

  // qualityCells are a rule's alerts, suppressed events, alerts closed as
  // false positive and share of the evaluation time.
  function qualityCells(r) {
    const sup = r.suppressed || 0;
    const supTitle = "by exceptions: " + fmtNum(r.suppressed_by_exceptions || 0) + ", by Sigma filters: " + fmtNum(r.suppressed_by_filters || 0) +
      (r.last_suppressed ? "; last " + fmtTime(r.last_suppressed) + " UTC" : "");
    const closed = r.closed || {};
    const fp = closed.false_positive || 0;
    const closedTitle = REASONS.map(([k, l]) => l + ": " + fmtNum(closed[k] || 0)).join(", ");
    return [
      el("td", { className: "num q-alerts", text: fmtNum(r.alerts || 0), title: "alerts raised since start (before grouping)" }),
      el("td", { className: "num q-suppressed", text: fmtNum(sup), title: supTitle }),
      el("td", { className: "num q-fp", text: fmtNum(fp), title: "closed as " + closedTitle }),
      el("td", { className: "num q-eval", text: pct(r.eval_share), title: "share of the sampled evaluation time: " + (r.eval_seconds_sampled || 0).toFixed(3) + " s" }),
    ];
  }

  async function renderRules() {
    const root = $("rules");
    let body, retro;
    try { [body, retro] = await Promise.all([api("/api/v1/rules"), api("/api/v1/retro").catch(() => null)]); } catch (err) {
      clear(root).appendChild(el("p", { className: "error", text: "Cannot load the rules: " + err.message }));
      return;
    }
    clear(root);
    const rs = body.rules || [];
    keepRuleInfo(rs);
    const errs = body.errors || [];
    if (errs.length) {
      const sec = el("section", { className: "card error-card", id: "rule-errors" }, el("h3", { text: errs.length + (errs.length === 1 ? " rule file failed to load" : " rule files failed to load") }));
      const ul = el("ul");
      for (const e of errs) ul.appendChild(el("li", null, el("code", { text: e.file + (e.line ? ":" + e.line : "") }), " ", e.error));
      sec.appendChild(ul);
      root.appendChild(sec);
    }
    const skipped = body.skipped || [];
    if (skipped.length) {
      root.appendChild(el("section", { className: "card", id: "rule-skipped" },
        el("h3", { text: skipped.length + (skipped.length === 1 ? " rule skipped" : " rules skipped") }),
        el("ul", null, skipped.map((k) => el("li", null, el("code", { className: "src", text: k.file + (k.line ? ":" + k.line : "") }), " ", k.title || k.id || "", el("span", { className: "muted", text: " (" + k.reason + ")" }))))));
    }
    const enabled = rs.filter((r) => r.enabled).length;
    const unable = rs.filter((r) => r.health && r.health.state === "unable_to_fire").length;
    const filters = rs.filter((r) => r.kind === "filter").length;
    root.appendChild(el("p", { className: unable ? "warning" : "muted", id: "rules-summary" },
      rs.length + " rules loaded, " + enabled + " enabled" + (filters ? ", " + filters + " Sigma filters" : "") +
      (unable ? "; " + unable + (unable === 1 ? " cannot fire and is" : " cannot fire and are") + " not evaluated (see Health)" : "") + "."));
    const heads = [["Rule", "c-rtitle"], ["Level", ""], ["Health", "c-health"], ["Alerts", "num"], ["Suppressed", "num"], ["Closed as FP", "num"], ["Eval time", "num"], ["ATT&CK and tags", "c-tags"], ["Field coverage", "c-cov"]];
    const t = el("table", { className: "rules", id: "rules-table" }, el("thead", null, el("tr", null,
      heads.map(([h, c]) => el("th", { className: c, text: h })))));
    const tb = el("tbody");
    const retroOn = !!(retro && retro.archive && retro.archive.enabled);
    for (const r of rs) tb.appendChild(ruleRow(r, retroOn));
    t.appendChild(tb);
    root.appendChild(el("div", { className: "table-wrap" }, t));
  }

  // ruleRow is a rule's row on the Rules page. Where it comes from goes
  // under its title (a drop-in rule's path is long), so that the columns
  // keep their room. retroOn adds the Retro-run button (serve has an
  // archive).
  function ruleRow(r, retroOn) {
    const cov = el("td", { className: "cov" });
    for (const c of r.coverage || []) {
      const cls = c.state === "blind" ? "chip bad" : c.state === "ok" ? "chip ok" : "chip";
      const text = c.intake + ": " + c.state + (c.missing && c.missing.length ? " (missing " + c.missing.join(", ") + ")" : "");
      cov.appendChild(el("span", { className: cls, text, title: text }));
    }
    if (r.eval_errors) cov.appendChild(el("span", { className: "chip bad", text: r.eval_errors + " evaluation errors" + (r.last_error ? ": " + r.last_error : "") }));
    const src = r.source === "builtin" ? "built-in" : (r.source || "") + "/" + (r.file || "");
    const meta = [r.kind && r.kind !== "detection" ? r.kind : "", r.status || "", r.enabled ? "" : "disabled"].filter(Boolean);
    const unable = r.health && r.health.state === "unable_to_fire";
    const applies = (r.applies_to || []).map((id) => id === "*" ? "every rule" : ruleInfo.get(id) || id);
    return el("tr", { className: [r.enabled ? "" : "disabled", unable ? "unable" : "", r.kind === "filter" ? "filter" : ""].join(" ").trim(), data: { rule: r.id } },
      el("td", { className: "rtitle" },
        r.kind === "filter" ? el("strong", { text: r.title || r.id }) : el("a", { href: "?rule=" + encodeURIComponent(r.id) + "#/", text: r.title || r.id }),
        el("div", { className: "muted small" }, el("span", { text: r.id }), meta.length ? " · " + meta.join(" · ") : ""),
        el("div", { className: "muted small src", text: src, title: src }),
        applies.length ? el("div", { className: "small", text: "applies to: " + applies.join("; ") }) : "",
        r.description || (r.references || []).length ? el("details", { className: "small about" }, el("summary", { text: "description" }),
          r.description ? el("div", { className: "desc", text: r.description }) : "",
          (r.references || []).length ? el("div", { className: "refs-inline" }, r.references.map((u) => [extLink(u), " "])) : "") : "",
        r.kind !== "filter" && retroOn ? retroButton(r) : ""),
      el("td", null, r.kind === "filter" ? "" : levelBadge(r.level)), healthCells(r),
      el("td", null, tagChips(r.tags)), cov);
  }

  // ------------------------------------------------------------ IOCs
  async function renderIOCs() {
    const root = $("iocs");
    let body;
    try { body = await api("/api/v1/iocs"); } catch (err) {
      clear(root).appendChild(el("p", { className: "error", text: "Cannot load the IOC status: " + err.message }));
      return;
    }
    clear(root);
    if (!body.enabled) {
      root.appendChild(el("p", null, "No IOC folder is configured. Start raywatch with ", el("code", { text: "--ioc-dir DIR" }),
        " (plain-text, CSV or STIX 2.1 files) to match every event against your indicators."));
      await renderRetroHunts(root);
      return;
    }
    const counts = Object.entries(body.counts || {}).filter((e) => e[1] > 0).sort((a, b) => b[1] - a[1]);
    root.appendChild(el("p", { id: "ioc-dir" }, "Folder ", el("code", { text: body.dir || "" }), el("span", { className: "muted", text: " (reloaded when its files change)" })));
    root.appendChild(el("p", null, el("b", { text: fmtNum(body.total) }), " indicators: ",
      counts.map(([k, v]) => el("span", { className: "chip", text: k + " " + fmtNum(v) }))));
    root.appendChild(iocWarnings(body.files || []));
    root.appendChild(iocSearch());
    const t = el("table", { id: "ioc-files" }, el("thead", null, el("tr", null,
      ["File", "Format", "Indicators", "By type", "Left out", "Last reload (UTC)", "Last error"].map((h) => el("th", { text: h })))));
    const tb = el("tbody");
    for (const f of body.files || []) {
      const left = [];
      if (f.expired) left.push(f.expired + " expired");
      if (f.superseded) left.push(f.superseded + " superseded");
      if (f.skipped) left.push(f.skipped + " skipped");
      if (f.bad_lines) left.push(f.bad_lines + " bad lines");
      const errCell = el("td", { className: f.last_error ? "error" : "" }, f.last_error ? f.last_error + (f.last_error_time ? " (" + fmtTime(f.last_error_time) + ")" : "") : "");
      if ((f.line_errors || []).length) {
        errCell.appendChild(el("ul", { className: "small" }, f.line_errors.slice(0, 10).map((e) => el("li", null, el("code", { text: e.file + ":" + e.line }), " " + e.error))));
      }
      tb.appendChild(el("tr", { className: f.warning ? "warn-row" : "" }, el("td", null, el("code", { text: f.file })), el("td", { text: f.format || "" }),
        el("td", { className: "num", text: fmtNum(f.total) }),
        el("td", null, Object.entries(f.indicators || {}).filter((e) => e[1] > 0).map(([k, v]) => el("span", { className: "chip", text: k + " " + fmtNum(v) }))),
        el("td", { className: "small", text: left.join(", ") }), el("td", { text: fmtTime(f.last_load) }), errCell));
    }
    t.appendChild(tb);
    root.appendChild(t);
    await renderRetroHunts(root);
  }

  // ------------------------------------------------------------ retro-hunts
  // The batch archive (serve --archive-dir) and the retro-hunts run over
  // it: on the Overview, the IOCs page and each rule's row.
  const INTEL_RULE = "294002c4-19e9-49b6-b4e2-92f3756e8c0e";

  function fmtBytes(n) {
    const u = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    for (n = Number(n) || 0; n >= 1000 && i < u.length - 1; i++) n /= 1000;
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }

  function archivePanel(ar) {
    const span = ar.objects ? fmtTime(ar.oldest) + " to " + fmtTime(ar.newest) + " UTC" : "empty";
    const bounds = [];
    if (ar.retention_seconds) bounds.push("kept " + Math.round(ar.retention_seconds / 3600) + " h");
    if (ar.max_bytes) bounds.push("at most " + fmtBytes(ar.max_bytes));
    return el("section", { className: "card", id: "archive" }, el("h3", { text: "Batch archive (retro-hunts)" }),
      el("p", null, el("b", { id: "archive-size", text: fmtBytes(ar.bytes) }), " in " + fmtNum(ar.objects) + (ar.objects === 1 ? " batch, " : " batches, "),
        el("span", { id: "archive-span", text: span }), bounds.length ? " (" + bounds.join(", ") + ")" : ""));
  }

  function retroButton(r) {
    if (r.id === INTEL_RULE) return "";
    const msg = el("span", { className: "muted small", role: "status" });
    const b = el("button", { type: "button", className: "ghost small retro-run", text: "Retro-run", title: "Run this rule over the batch archive; its matches become alerts marked retro" });
    b.addEventListener("click", async () => {
      b.disabled = true;
      msg.textContent = " queuing...";
      try {
        const res = await api("/api/v1/rules/" + encodeURIComponent(r.id) + "/retro", { method: "POST" });
        msg.textContent = " hunt " + res.hunt + " queued (progress on the IOCs page)";
      } catch (err) {
        msg.textContent = " " + err.message;
        b.disabled = false;
      }
    });
    return el("div", { className: "small" }, b, msg);
  }

  let retroTimer = 0;

  async function renderRetroHunts(root) {
    clearTimeout(retroTimer);
    let retro;
    try { retro = await api("/api/v1/retro"); } catch (_) { return; }
    const sec = el("section", { className: "card", id: "retro-hunts" }, el("h3", { text: "Retro-hunts" }));
    root.appendChild(sec);
    if (!retro.archive || !retro.archive.enabled) {
      sec.appendChild(el("p", { className: "muted" }, "Off. Start raywatch with ", el("code", { text: "--archive-dir DIR" }),
        " to keep the batches it processes: indicators added later are then hunted over past traffic."));
      return;
    }
    sec.appendChild(archivePanel(retro.archive).lastChild);
    if (!(retro.hunts || []).length) {
      sec.appendChild(el("p", { className: "muted", text: "No hunt yet: adding indicators to the IOC folder starts one." }));
      return;
    }
    const t = el("table", { id: "retro-table" }, el("thead", null, el("tr", null,
      ["Hunt", "What", "State", "Started (UTC)", "Progress", "Matches"].map((h) => el("th", { text: h })))));
    const tb = el("tbody");
    for (const h of retro.hunts) {
      const what = h.kind === "rule" ? el("a", { href: "?rule=" + encodeURIComponent(h.rule) + "#/", text: "rule " + h.rule })
        : el("span", null, fmtNum(h.indicators) + " new indicator" + (h.indicators === 1 ? "" : "s") + ": ",
          (h.shown || []).slice(0, 5).map((x) => el("code", { className: "chip", text: x })));
      const pct = h.bytes_total ? Math.round(100 * h.bytes / h.bytes_total) + "% of " : "";
      let progress = pct + fmtNum(h.objects) + "/" + fmtNum(h.objects_total) + " batches, " + fmtNum(h.records) + " records";
      if (!isZero(h.finished) && !isZero(h.started)) progress += ", " + ((new Date(h.finished) - new Date(h.started)) / 1000).toFixed(1) + " s";
      tb.appendChild(el("tr", { className: h.state === "failed" ? "warn-row" : "" },
        el("td", { className: "mono small", text: h.id }), el("td", null, what),
        el("td", null, el("span", { className: "chip", text: h.state }), h.error ? el("div", { className: "error small", text: h.error }) : ""),
        el("td", { text: fmtTime(isZero(h.started) ? "" : h.started) }), el("td", { className: "small", text: progress }),
        el("td", { className: "num" }, h.matches ? el("a", { href: "?rule=" + encodeURIComponent(h.rule) + "#/", text: fmtNum(h.matches) }) : "0")));
    }
    t.appendChild(tb);
    sec.appendChild(t);
    // While a hunt runs, its progress is refreshed.
    if (retro.hunts.some((h) => h.state === "running" || h.state === "queued")) {
      retroTimer = setTimeout(() => { if (currentView === "iocs") renderIOCs(); }, 3000);
    }
  }

  // iocWarnings lists the files whose content looks wrong (emptied, or an
  // error page instead of a feed): set aside when they had indicators.
  function iocWarnings(files) {
    const box = el("div", { id: "ioc-warnings" });
    for (const f of files.filter((x) => x.warning)) {
      // The warning names the file and says what it keeps.
      box.appendChild(el("div", { className: "warning" }, f.warning + (f.warning_time ? " (" + fmtTime(f.warning_time) + " UTC)" : "")));
    }
    return box;
  }

  // iocSearch is the search of the indicators in use: which file and line
  // holds a value (or a range or domain that covers it).
  function iocSearch() {
    const q = el("input", { type: "search", id: "ioc-q", placeholder: "Which file holds a value? IP, domain, URL, user-agent, JA3", "aria-label": "Search the indicators", value: iocSearch.last || "" });
    const out = el("div", { id: "ioc-results" });
    const form = el("form", { className: "filters", id: "ioc-search", autocomplete: "off" }, q, el("button", { type: "submit", text: "Search" }));
    const HOW = { equal: "is the value", covers: "covers it", contains: "holds it" };
    const run = async () => {
      const v = q.value.trim();
      iocSearch.last = v;
      clear(out);
      if (!v) return;
      out.appendChild(el("p", { className: "muted", text: "searching..." }));
      let res;
      try { res = await api("/api/v1/iocs/search?q=" + encodeURIComponent(v)); } catch (err) {
        clear(out).appendChild(el("p", { className: "error", text: "Cannot search: " + err.message }));
        return;
      }
      clear(out);
      const ms = res.matches || [];
      if (!ms.length) {
        out.appendChild(el("p", { className: "muted", text: "No indicator in use holds or covers " + v + "." }));
        return;
      }
      const tb = el("tbody");
      for (const m of ms) {
        tb.appendChild(el("tr", null, el("td", { className: "mono wrap", text: m.value }), el("td", { text: m.type }),
          el("td", null, el("code", { className: "src", text: m.file + ":" + m.line })), el("td", { text: HOW[m.how] || m.how })));
      }
      out.appendChild(el("table", { id: "ioc-found" }, el("thead", null, el("tr", null, ["Indicator", "Type", "File and line", "Match"].map((h) => el("th", { text: h })))), tb));
      if (res.more) out.appendChild(el("p", { className: "muted", text: "More indicators match; the first " + ms.length + " are shown." }));
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
    if (iocSearch.last) run();
    return el("section", { className: "card" }, el("h3", { text: "Search the indicators" }), form, out);
  }

  // ------------------------------------------------------------ exceptions
  let excTimer = 0;

  // excCondition describes one match key of an exception.
  function excCondition(key, vals) {
    const [field, op] = key.split("|");
    const list = Array.isArray(vals) ? vals : [vals];
    const text = field + " " + (OP_WORDS[op || ""] || op) + " " + list.join(" or ");
    return el("span", { className: "chip cond", text, title: text });
  }

  async function renderExceptions() {
    clearTimeout(excTimer);
    const root = $("exceptions");
    let body;
    try {
      body = await api("/api/v1/exceptions");
      if (!ruleInfo.size) keepRuleInfo((await api("/api/v1/rules")).rules);
    } catch (err) {
      clear(root).appendChild(el("p", { className: "error", text: "Cannot load the exceptions: " + err.message }));
      return;
    }
    if (currentView !== "exceptions") return;
    clear(root);
    const xs = body.exceptions || [];
    if (!xs.length) root.appendChild(el("p", { className: "muted", id: "exc-empty", text: "No exception yet." }));
    else {
      const tb = el("tbody");
      for (const x of xs) tb.appendChild(exceptionRow(x));
      root.appendChild(el("div", { className: "table-wrap" }, el("table", { id: "exc-table", className: "exceptions" },
        el("thead", null, el("tr", null, ["Applies to", "Conditions", "Comment", "Created", "Expires", "Suppressed", "Last suppressed", ""].map((h) => el("th", { text: h })))), tb)));
    }
    excTimer = setTimeout(() => { if (currentView === "exceptions") renderExceptions(); }, 5000);
  }

  function exceptionRow(x) {
    const del = el("button", { type: "button", className: "ghost del", text: "Delete", title: "Delete this exception: it stops applying at once" });
    del.addEventListener("click", async () => {
      if (!confirm("Delete this exception? Matching events will raise alerts again.")) return;
      del.disabled = true;
      try {
        await api("/api/v1/exceptions/" + encodeURIComponent(x.id), { method: "DELETE" });
      } catch (err) {
        del.disabled = false;
        alert("Cannot delete: " + err.message);
        return;
      }
      renderExceptions();
    });
    const keys = Object.keys(x.match || {}).sort();
    const rule = x.rule === "*" ? "every rule" : ruleInfo.get(x.rule) || x.rule;
    return el("tr", { className: x.expired ? "expired" : "", data: { id: x.id } },
      el("td", { className: "wrap" }, el("strong", { text: rule }), x.rule === "*" ? "" : el("div", { className: "muted small", text: x.rule })),
      el("td", { className: "wrap" }, keys.map((k) => excCondition(k, x.match[k]))),
      el("td", { className: "wrap exc-comment", text: x.comment || "" }),
      el("td", { className: "small" }, fmtTime(x.created_at) + " UTC", el("div", { className: "muted", text: "by " + (x.created_by || "?") })),
      el("td", { className: "small exc-expires" }, isZero(x.expires) ? "never" : fmtTime(x.expires) + " UTC", x.expired ? el("div", null, el("span", { className: "badge expired", text: "expired" })) : ""),
      el("td", { className: "num exc-suppressed", text: fmtNum(x.suppressed || 0) }),
      el("td", { className: "small exc-last", text: isZero(x.last_suppressed) ? "never" : fmtTime(x.last_suppressed) + " UTC" }),
      el("td", null, del));
  }

  // ------------------------------------------------------------ warnings
  // Field coverage (rules blind on an intake) and Logpush job health, on
  // every page.
  async function refreshWarnings() {
    const box = $("warnings");
    const out = [];
    try {
      const cov = await api("/api/v1/coverage");
      for (const c of cov || []) {
        if (!c.message) continue;
        out.push(el("div", { className: "warning coverage-warning" }, el("b", { text: "Field coverage: " }), c.message,
          c.fix ? el("div", { className: "fix" }, "Fix: ", el("code", { text: c.fix })) : ""));
      }
    } catch (_) { /* not fatal */ }
    try {
      const jobs = await api("/api/v1/jobs");
      if (jobs && jobs.enabled) {
        if (jobs.error) out.push(el("div", { className: "warning job-warning" }, el("b", { text: "Logpush: " }), "the Cloudflare API fails: " + jobs.error));
        for (const j of jobs.jobs || []) {
          if (j.warning) out.push(el("div", { className: "warning job-warning" }, el("b", { text: "Logpush: " }), j.warning));
        }
      }
    } catch (_) { /* not fatal */ }
    try {
      const b = await api("/api/v1/blocks?limit=1");
      if (b && b.full) {
        out.push(el("div", { className: "warning block-warning" }, el("b", { text: "Edge block list: " }),
          "the list " + b.list + " is full (" + fmtNum(b.listed) + " of --block-max " + fmtNum(b.max) + "): each new block takes off the entry due to expire first (" + fmtNum(b.evicted) + " so far). Raise --block-max or shorten --block-ttl."));
      }
      if (b && b.last_error) out.push(el("div", { className: "warning block-warning" }, el("b", { text: "Edge block list: " }), "the Cloudflare list cannot be changed: " + b.last_error));
    } catch (_) { /* no block list */ }
    try {
      const th = await api("/api/v1/throttled");
      const seen = new Set();
      for (const x of (th && th.throttled) || []) {
        if (seen.has(x.rule)) continue; // the latest minute of each rule
        seen.add(x.rule);
        out.push(el("div", { className: "warning throttle-warning" }, el("b", { text: "Runaway rule: " }),
          (x.title || x.rule) + " created " + fmtNum(x.created) + " new alerts in the minute of " + fmtTime(x.minute) +
          " UTC, its budget (--rule-alert-budget " + th.budget + "); " + fmtNum(x.dropped) +
          (x.dropped === 1 ? " more match" : " more matches") + " raised no new alert until the minute ended, so that the other rules stay visible."));
      }
    } catch (_) { /* not fatal */ }
    clear(box);
    append(box, out);
  }

  async function loadChoices() {
    try {
      const body = await api("/api/v1/rules");
      keepRuleInfo(body.rules);
      const sel = $("f-rule");
      const keep = filters.rule;
      clear(sel).appendChild(el("option", { value: "", text: "All rules" }));
      for (const r of (body.rules || []).slice().sort((a, b) => String(a.title).localeCompare(String(b.title)))) {
        sel.appendChild(el("option", { value: r.id, text: r.title || r.id }));
      }
      if (keep && ![...sel.options].some((o) => o.value === keep)) sel.appendChild(el("option", { value: keep, text: keep }));
      sel.value = keep;
    } catch (_) { /* keep the bare select */ }
    try {
      const cov = await api("/api/v1/coverage");
      const sel = $("f-intake");
      for (const c of cov || []) {
        if (c.intake && ![...sel.options].some((o) => o.value === c.intake)) sel.appendChild(el("option", { value: c.intake, text: c.intake }));
      }
      sel.value = filters.intake;
    } catch (_) { /* idem */ }
  }

  // ------------------------------------------------------------ routing
  let currentView = "";

  function route() {
    const h = location.hash.replace(/^#\/?/, "");
    let view = "alerts";
    let id = "";
    if (h.startsWith("alert/")) {
      view = "detail";
      id = decodeURIComponent(h.slice(6));
    } else if (["overview", "rules", "iocs", "exceptions"].includes(h)) view = h;
    // Filters may have changed through a link (?rule=...#/).
    const f = readFilters();
    if (FILTERS.some((k) => f[k] !== filters[k])) {
      filters = f;
      syncFilterForm();
      list.reload();
    }
    currentView = view;
    for (const v of ["alerts", "detail", "overview", "rules", "iocs", "exceptions"]) $("view-" + v).hidden = v !== view;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.view === (view === "detail" ? "alerts" : view));
    if (view !== "detail") detail.id = "";
    if (view === "detail") detail.open(id);
    else if (view === "overview") renderOverview();
    else if (view === "rules") renderRules();
    else if (view === "iocs") renderIOCs();
    else if (view === "exceptions") renderExceptions();
    else {
      const cur = list.byID.get(list.selected);
      if (cur) cur.tr.scrollIntoView({ block: "nearest" });
      maybeLoadMore();
    }
  }

  window.addEventListener("hashchange", route);
  window.addEventListener("scroll", () => { if (currentView === "alerts") maybeLoadMore(); }, { passive: true });

  // ------------------------------------------------------------ keyboard
  let gPending = false;
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (e.key === "Escape") {
      if (typing) { t.blur(); return; }
      if (currentView !== "alerts") location.hash = "#/";
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (gPending) {
      gPending = false;
      const to = { o: "#/overview", a: "#/", r: "#/rules", i: "#/iocs", e: "#/exceptions" }[e.key];
      if (to) { location.hash = to; e.preventDefault(); }
      return;
    }
    switch (e.key) {
    case "g":
      gPending = true;
      setTimeout(() => { gPending = false; }, 1000);
      break;
    case "j":
    case "k": {
      const id = move(e.key === "j" ? 1 : -1);
      if (currentView === "detail" && id && id !== detail.id) location.hash = "#/alert/" + encodeURIComponent(id);
      e.preventDefault();
      break;
    }
    case "Enter":
      if (currentView === "alerts" && list.selected) {
        location.hash = "#/alert/" + encodeURIComponent(list.selected);
        e.preventDefault();
      }
      break;
    case "a": {
      const id = currentView === "detail" ? detail.id : currentView === "alerts" ? list.selected : "";
      if (id) {
        const c = $("d-comment");
        setStatus(id, "acknowledged", currentView === "detail" && c ? c.value.trim() : "").catch((err) => {
          $("list-state").textContent = "cannot acknowledge: " + err.message;
        });
        e.preventDefault();
      }
      break;
    }
    case "/":
      if (currentView !== "alerts") location.hash = "#/";
      $("f-q").focus();
      e.preventDefault();
      break;
    case "?":
      $("help").showModal();
      break;
    }
  });
  $("help-btn").addEventListener("click", () => $("help").showModal());

  // ------------------------------------------------------------ theme
  const THEMES = ["auto", "light", "dark"];
  function applyTheme(th) {
    if (th === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = th;
    $("theme").textContent = "theme: " + th;
  }
  let theme = "auto";
  try { theme = localStorage.getItem("raywatch-theme") || "auto"; } catch (_) { /* private mode */ }
  if (!THEMES.includes(theme)) theme = "auto";
  applyTheme(theme);
  $("theme").addEventListener("click", () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    try { localStorage.setItem("raywatch-theme", theme); } catch (_) { /* idem */ }
    applyTheme(theme);
  });

  // ------------------------------------------------------------ start
  syncFilterForm();
  list.reload();
  connect();
  route();
  loadChoices();
  refreshWarnings();
  setInterval(refreshWarnings, 30000);
  setInterval(refreshTotal, 30000);
})();

// mamori console: live rows from /events (server-sent events) and keyboard shortcuts.
// Our own small script; the pages work without it (it only adds what happened since they loaded).
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const live = document.getElementById("live");
  const state = document.getElementById("stream-state");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }
  const code = (t) => el("code", {}, t || "");
  const sev = (s) => el("span", { class: "sev sev-" + s }, s || "");
  const when = (t) => el("time", { datetime: t || "" }, t ? t.slice(0, 19).replace("T", " ") : "");
  const link = (href, text) => el("a", { href: href }, text);

  function decisionForms(d) {
    const cell = el("td");
    for (const verb of ["approve", "reject"]) {
      const form = el("form", { method: "post", action: "/decisions/" + encodeURIComponent(d.id) + "/" + verb, class: "inline" },
        el("input", { type: "hidden", name: "csrf_token", value: csrf }),
        el("button", { type: "submit", class: verb, "aria-label": verb + " " + d.action + " " + d.target }, verb[0].toUpperCase() + verb.slice(1)));
      cell.append(form, " ");
    }
    return cell;
  }

  const rows = {
    alert: (a, body) => {
      if (body.dataset.filterDetector && body.dataset.filterDetector !== a.detector) return null;
      if (body.dataset.filterSeverity && body.dataset.filterSeverity !== a.severity) return null;
      return el("tr", {}, el("th", { scope: "row" }, when(a.first_seen)), el("td", {}, a.detector), el("td", {}, sev(a.severity)),
        el("td", {}, a.summary), el("td", {}, code(a.src)), el("td", {}, code(a.dst)), el("td", {}, link("/incidents/" + a.incident, a.incident)));
    },
    incident: (i) => el("tr", { "data-id": i.id }, el("th", { scope: "row" }, link("/incidents/" + i.id, i.id)), el("td", {}, sev(i.severity)),
      el("td", {}, i.title), el("td", {}, Number(i.confidence).toFixed(2)), el("td", {}, when(i.first_seen)), el("td", {}, i.alerts)),
    decision: (d, body) => {
      if (d.state !== "pending") return null;
      const tr = el("tr", { "data-id": d.id }, el("th", { scope: "row" }, code(d.id)), el("td", {}, d.action), el("td", {}, code(d.target)),
        el("td", {}, link("/incidents/" + d.incident, d.incident)), el("td", {}, d.verdict), el("td", { class: "state" }, d.state),
        el("td", {}, (d.reasons || []).join("; ")));
      if (body.dataset.forms === "1") tr.append(decisionForms(d));
      return tr;
    },
    run: (r) => el("tr", { "data-id": r.id }, el("th", { scope: "row" }, r.state === "done" ? link("/runs/" + r.id + "/report.html", r.id) : r.id),
      el("td", { class: "state" }, r.state + (r.error ? ": " + r.error : "")), el("td", {}, ""), el("td", {}, (r.captures || []).join(", ")),
      el("td", { class: "alerts" }, r.alerts == null ? "" : r.alerts), el("td", { class: "incidents" }, r.incidents == null ? "" : r.incidents)),
  };

  function say(text) { if (live) live.textContent = text; }

  function place(kind, data) {
    for (const body of document.querySelectorAll('tbody[data-live="' + kind + '"]')) {
      const old = data.id ? body.querySelector('tr[data-id="' + CSS.escape(data.id) + '"]') : null;
      if (kind === "decision" && old && data.state !== "pending") {  // decided elsewhere: show it
        const cell = old.querySelector(".state");
        if (cell) cell.textContent = data.state + (data.by ? " by " + data.by : "");
        old.querySelectorAll("form").forEach((f) => f.remove());
        continue;
      }
      const row = rows[kind](data, body);
      if (!row) continue;
      row.classList.add("fresh");
      body.querySelectorAll("tr.none").forEach((r) => r.remove());
      if (old) {
        // an update says only what changed: keep the cells it leaves empty (a run's start, captures)
        old.querySelectorAll("td").forEach((cell, n) => {
          const fresh = row.querySelectorAll("td")[n];
          if (fresh && fresh.textContent === "" && cell.textContent !== "") fresh.replaceWith(cell.cloneNode(true));
        });
        old.replaceWith(row);
      } else body.prepend(row);
      const count = body.closest("table").querySelector("caption .count");
      if (count) count.textContent = String(body.querySelectorAll("tr:not(.none)").length);
    }
  }

  function describe(kind, d) {
    if (kind === "alert") return "New alert: " + d.detector + " " + (d.src || "") + " → " + (d.dst || "");
    if (kind === "incident") return "New incident: " + d.id + " " + d.title;
    if (kind === "decision") return "Decision " + d.id + " " + (d.change || d.state) + ": " + d.action + " " + d.target;
    if (kind === "run") return "Patrol run " + d.id + " " + d.state;
    return kind;
  }

  if (window.EventSource && document.querySelector("header.top")) {
    const source = new EventSource("/events");
    source.onopen = () => { if (state) state.textContent = "live updates: on"; };
    source.onerror = () => { if (state) state.textContent = "live updates: reconnecting"; };
    for (const kind of Object.keys(rows)) {
      source.addEventListener(kind, (ev) => {
        const data = JSON.parse(ev.data);
        place(kind, data);
        say(describe(kind, data));
      });
    }
    window.addEventListener("beforeunload", () => source.close());
  }

  // Keyboard: "g" then a page letter; "/" focuses the first field of the page.
  let pending = false;
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.ctrlKey && ev.key === "Enter" && t.tagName === "TEXTAREA" && t.form) { t.form.requestSubmit(); return; }
    if (ev.altKey || ev.ctrlKey || ev.metaKey || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable) return;
    if (pending) {
      pending = false;
      const a = document.querySelector('header.top a[data-key="' + ev.key + '"]');
      if (a) { ev.preventDefault(); a.click(); }
      return;
    }
    if (ev.key === "g") { pending = true; setTimeout(() => { pending = false; }, 1500); return; }
    if (ev.key === "/") {
      const f = document.querySelector("main input:not([type=hidden]), main select, main textarea");
      if (f) { ev.preventDefault(); f.focus(); }
    }
  });
})();

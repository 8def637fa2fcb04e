// Keeps a live run's timeline current on the admin run page: polls the staff-only timeline feed
// (same-origin, session cookie) for events after the last seq shown, appends them, and stops
// after the terminal event. Each answer also carries the run's current status, totals and times,
// which replace the page's read-only fields and the run's title (heading, breadcrumb, window title),
// so the page agrees with its timeline when the run ends. Everything is set with textContent, so
// payloads can never inject markup.
"use strict";
(function () {
  const POLL_MS = 1000;
  const table = document.getElementById("run-timeline");
  if (!table || table.dataset.live !== "true") return;
  const body = table.tBodies[0];
  const reply = document.getElementById("run-reply");
  const badge = document.getElementById("run-live");
  let afterSeq = Number(table.dataset.afterSeq || 0);
  let runTitle = table.dataset.runTitle || "";

  function cell(row, className, text) {
    const td = row.insertCell();
    td.className = className;
    if (text !== undefined) td.textContent = text;
    return td;
  }

  function payloadCell(row, event) {
    const td = cell(row, "payload");
    const pre = document.createElement("pre");
    pre.textContent = event.payload;
    if (!event.folded) { td.appendChild(pre); return; }
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = event.payload.length + " chars";
    details.append(summary, pre);
    td.appendChild(details);
  }

  function append(event) {
    const empty = body.querySelector("tr.no-events");
    if (empty) empty.remove();
    const row = body.insertRow();
    row.className = "event event-" + event.type.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
    row.dataset.seq = event.seq;
    cell(row, "seq", String(event.seq));
    cell(row, "time", event.created_at);
    const code = document.createElement("code");
    code.textContent = event.type;
    cell(row, "type").appendChild(code);
    cell(row, "summary", event.summary);
    payloadCell(row, event);
    afterSeq = event.seq;
  }

  function retitle(title) {
    if (!title || title === runTitle) return;
    const heading = document.querySelector("#content > h2");
    if (heading && heading.textContent.trim() === runTitle) heading.textContent = title;
    const crumbs = document.querySelector(".breadcrumbs");
    const last = crumbs && crumbs.lastChild;
    if (last && last.nodeType === Node.TEXT_NODE) last.textContent = last.textContent.replace(runTitle, title);
    document.title = document.title.replace(runTitle, title);
    runTitle = title;
  }

  function refresh(run) {
    if (!run) return;
    Object.entries(run.fields || {}).forEach(function ([name, text]) {
      const field = document.querySelector(".field-" + name + " .readonly");
      if (field && field.textContent !== text) field.textContent = text;
    });
    retitle(run.title);
  }

  function finish(status) {
    table.dataset.live = "false";
    if (badge) { badge.textContent = status; badge.classList.add("run-live-off"); }
  }

  async function poll() {
    let delay = POLL_MS;
    try {
      const response = await fetch(table.dataset.feedUrl + "?after_seq=" + afterSeq,
                                   {credentials: "same-origin", headers: {"Accept": "application/json"}});
      if (!response.ok) throw new Error("feed answered " + response.status);
      const feed = await response.json();
      feed.events.forEach(append);
      if (reply && typeof feed.reply === "string") reply.textContent = feed.reply;
      refresh(feed.run);
      if (!feed.live) { finish(feed.status); return; }
      if (feed.more) delay = 0;
    } catch (error) {
      delay = POLL_MS * 5;  // the server restarted or the session ended: back off, keep trying
    }
    window.setTimeout(poll, delay);
  }
  poll();
})();

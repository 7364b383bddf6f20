// SPDX-License-Identifier: Apache-2.0
// Relay console, live page: asks /live/feed for what was indexed since it last asked and
// puts new rows at the top of the table. Every value is set as text (textContent), never
// parsed as HTML, so whatever a provider sent stays text.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const body = document.querySelector("#live tbody");
  if (!status || !body) return;
  let afterEvent = status.dataset.afterEvent;
  let afterLetter = status.dataset.afterLetter;

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function show(item) {
    const row = document.createElement("tr");
    row.className = item.kind === "dead-letter" ? "dead-letter new" : "event new";
    cell(row, item.received_at);
    cell(row, item.kind);
    cell(row, item.provider);
    cell(row, item.what);
    cell(row, item.order_id || "-");
    const idCell = cell(row, "");
    if (item.kind === "dead-letter") {
      const link = document.createElement("a");
      link.href = "/letters/" + encodeURIComponent(item.provider) + "/" + encodeURIComponent(item.id);
      link.textContent = item.id;
      idCell.appendChild(link);
    } else {
      idCell.textContent = item.id;
    }
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
  }

  async function poll() {
    try {
      const query = "after_event=" + encodeURIComponent(afterEvent) +
        "&after_letter=" + encodeURIComponent(afterLetter);
      const response = await fetch("/live/feed?" + query, { credentials: "same-origin" });
      if (response.ok) {
        const feed = await response.json();
        feed.rows.forEach(show);
        afterEvent = feed.after_event;
        afterLetter = feed.after_letter;
        status.textContent = "Live: last asked " + new Date().toISOString();
      } else {
        status.textContent = "Live: the console answered " + response.status;
      }
    } catch (error) {
      status.textContent = "Live: the console cannot be reached";
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();

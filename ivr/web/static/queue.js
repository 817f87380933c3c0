// Refresh the queue's rows in place (filters, scroll and focus stay) for staff who keep it open all night.
(function () {
  const table = document.getElementById("queue");
  if (!table) return;
  const seconds = Number(table.dataset.refreshSeconds || 30);
  async function refresh() {
    try {
      const response = await fetch(window.location.href, { headers: { "X-Partial": "rows" }, credentials: "same-origin" });
      if (!response.ok || response.redirected) return;
      const holder = document.createElement("table");
      holder.innerHTML = await response.text();
      const rows = holder.querySelector("#queue-rows");
      const current = document.getElementById("queue-rows");
      if (rows && current && !table.contains(document.activeElement)) {
        current.replaceWith(rows);
        // The pager's count follows the rows (显示第 a–b 条,共 M 条): new tickets change M.
        const summary = response.headers.get("X-Queue-Summary");
        const count = document.querySelector("#queue-pager .count");
        if (count && summary) count.textContent = decodeURIComponent(summary);
      }
    } catch (error) {
      // Network hiccup: try again next time.
    }
  }
  window.setInterval(refresh, seconds * 1000);
})();

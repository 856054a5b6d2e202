// The console stays live: the server signals over /console/ws; the page then re-reads what
// changed through the JSON API and updates the queue table or the message list. Everything
// the server sends is inserted as text, never as HTML.
(function () {
  "use strict";
  const root = document.querySelector(".console");
  if (!root) return;
  const page = root.dataset.page;
  const conversationId = root.dataset.id;

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.insert");
    if (!button) return;
    const box = document.getElementById("reply-text");
    if (box) { box.value = button.dataset.text; box.focus(); }
  });

  function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

  async function refreshQueue() {
    const response = await fetch("/console/api/queue", { headers: { "Accept": "application/json" } });
    if (!response.ok) return;
    const data = await response.json();
    const body = document.querySelector("#queue tbody");
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    body.replaceChildren();
    document.getElementById("queue-count").textContent = String(data.waiting.length);
    if (!data.waiting.length) {
      const row = document.createElement("tr"); row.className = "empty";
      const td = cell("Nobody is waiting."); td.colSpan = 7; row.append(td); body.append(row);
      return;
    }
    for (const w of data.waiting) {
      const row = document.createElement("tr");
      row.className = "reason-" + w.reason + (w.tier ? " vip" : "");
      row.dataset.id = String(w.id);
      const who = cell(w.customer);
      if (w.tier) { const badge = document.createElement("span"); badge.className = "badge"; badge.textContent = "VIP " + w.tier; who.append(" ", badge); }
      const form = document.createElement("form");
      form.method = "post"; form.action = "/console/claim/" + w.id;
      const token = document.createElement("input"); token.type = "hidden"; token.name = "csrf_token"; token.value = csrf;
      const claim = document.createElement("button"); claim.type = "submit"; claim.textContent = "Claim";
      form.append(token, claim);
      const actions = document.createElement("td"); actions.append(form);
      row.append(cell(String(w.id)), who, cell(w.reason), cell(w.channel), cell(w.locale), cell(w.waiting_minutes + " min"), actions);
      body.append(row);
    }
  }

  async function refreshMessages() {
    const response = await fetch("/console/api/c/" + conversationId, { headers: { "Accept": "application/json" } });
    if (!response.ok) return;
    const data = await response.json();
    const list = document.getElementById("messages");
    const last = Number(root.dataset.last || 0);
    for (const m of data.messages) {
      if (m.id <= last) continue;
      const item = document.createElement("li");
      item.className = "message from-" + m.from; item.dataset.id = String(m.id);
      const who = document.createElement("span"); who.className = "who"; who.textContent = m.from;
      const text = document.createElement("span"); text.className = "text"; text.textContent = m.text;
      item.append(who, text);
      list.append(item);
      root.dataset.last = String(m.id);
    }
    list.scrollTop = list.scrollHeight;
  }

  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/console/ws");
    socket.addEventListener("open", function () {
      delay = 1000;
      if (page === "conversation") socket.send(JSON.stringify({ watch: Number(conversationId) }));
    });
    socket.addEventListener("message", function (event) {
      const signal = JSON.parse(event.data);
      if (page === "queue" && signal.topic === "queue") refreshQueue();
      if (page === "conversation" && signal.topic === "conversation:" + conversationId) refreshMessages();
    });
    socket.addEventListener("close", function () {
      setTimeout(connect, delay); delay = Math.min(delay * 2, 30000);
    });
  }
  connect();
  const list = document.getElementById("messages");
  if (list) list.scrollTop = list.scrollHeight;
})();

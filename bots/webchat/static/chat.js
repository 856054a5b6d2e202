/* The chat page: one WebSocket to /ws/chat (protocol: docs/webchat.md).
   Every text from the server is put in with textContent, never as HTML. */
(function () {
  "use strict";

  var STORAGE_KEY = "p2pdesk.webchat.session";
  var ATTRIBUTION = ["utm_source", "utm_campaign", "ref"];
  var MAX_CHARS = 4000;
  var query = new URLSearchParams(window.location.search);
  var lang = /^en/i.test(query.get("lang") || navigator.language || "") ? "en" : "zh-CN";
  var t = window.P2P_CHAT_STRINGS[lang];
  var embedded = query.get("embed") === "1";

  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var fileInput = document.getElementById("chat-file");
  var status = document.getElementById("chat-status");
  var typing = document.getElementById("chat-typing");

  var socket = null;
  var ready = false;  // the server greeted us (hello or history): frames may be sent
  var attempt = 0;
  var sequence = 0;
  var typingTimer = null;
  var outbox = [];  // frames written while the socket was down, sent once it is back
  var shown = {};  // client ids of the user's messages on screen (a sibling tab's echo)
  var memoryToken = null;  // when localStorage is not available (private mode, blocked)

  // Session token ------------------------------------------------------------------------------

  function loadToken() {
    try { return window.localStorage.getItem(STORAGE_KEY) || memoryToken; }
    catch (e) { return memoryToken; }
  }

  function saveToken(token) {
    memoryToken = token;
    try { window.localStorage.setItem(STORAGE_KEY, token); } catch (e) { /* memory only */ }
  }

  // Rendering ----------------------------------------------------------------------------------

  function applyStrings() {
    document.documentElement.lang = lang;
    document.title = t.title;
    document.querySelectorAll("[data-i18n]").forEach(function (el) {
      el.textContent = t[el.getAttribute("data-i18n")];
    });
    input.placeholder = t.placeholder;
    if (embedded) { document.body.classList.add("embedded"); }
  }

  function senderName(message) {
    if (message.from === "agent") { return message.name ? message.name + " (" + t.agent + ")" : t.agent; }
    return message.from === "user" ? t.you : (t[message.from] || t.bot);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function render(message) {
    var from = ["user", "bot", "agent", "system"].indexOf(message.from) >= 0 ? message.from : "bot";
    var item = el("div", "msg msg--" + from);
    var who = el("span", from === "agent" ? "msg__name" : "visually-hidden", senderName(message));
    item.appendChild(who);
    item.appendChild(el("p", "msg__text", message.text));
    var buttons = message.buttons || [];
    if (buttons.length) {
      var group = el("div", "msg__buttons");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", senderName(message));
      buttons.forEach(function (button) {
        var b = el("button", "msg__button", button.label);
        b.type = "button";
        b.addEventListener("click", function () { press(button, group); });
        group.appendChild(b);
      });
      item.appendChild(group);
    }
    var at = message.at ? new Date(message.at) : new Date();
    if (!isNaN(at.getTime())) {
      var time = el("time", "msg__time",
                    at.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" }));
      time.dateTime = at.toISOString();
      item.appendChild(time);
    }
    if (message.client_id) { shown[message.client_id] = true; }
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function renderError(text) {
    var item = el("div", "msg msg--error");
    item.appendChild(el("span", "visually-hidden", t.error));
    item.appendChild(el("p", "msg__text", text));
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function clearLog() {
    while (log.firstChild) { log.removeChild(log.firstChild); }
    shown = {};
  }

  function disableOldButtons() {
    var groups = log.querySelectorAll(".msg__buttons");
    for (var i = 0; i < groups.length - 1; i++) { disable(groups[i]); }
  }

  function disable(group) {
    group.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
  }

  function showTyping(on) {
    typing.hidden = !on;
    clearTimeout(typingTimer);
    if (on) { typingTimer = setTimeout(function () { typing.hidden = true; }, 15000); }
  }

  function setStatus(text) { status.textContent = text; }

  // Talking to the server ----------------------------------------------------------------------

  function url() {
    var params = new URLSearchParams();
    var token = loadToken();
    if (token) { params.set("session", token); }
    params.set("lang", lang);
    ATTRIBUTION.forEach(function (name) {
      if (query.get(name)) { params.set(name, query.get(name)); }
    });
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/ws/chat?" + params.toString();
  }

  function connect() {
    setStatus(attempt ? t.reconnecting : t.connecting);
    socket = new WebSocket(url());
    socket.addEventListener("open", function () { attempt = 0; setStatus(""); });
    socket.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      receive(frame);
    });
    socket.addEventListener("close", function () {
      socket = null;
      ready = false;
      showTyping(false);
      attempt += 1;
      setStatus(t.reconnecting);
      var delay = Math.min(30000, 1000 * Math.pow(2, attempt - 1));  // 1 s, 2 s, 4 s ... 30 s
      setTimeout(connect, delay / 2 + Math.random() * delay / 2);
    });
  }

  function receive(frame) {
    if (frame.type === "hello") {  // a new chat (the first visit, or the old one expired)
      saveToken(frame.session);
      clearLog();
      ready = true;
      resend();
    } else if (frame.type === "history") {
      clearLog();
      (frame.messages || []).forEach(render);
      disableOldButtons();
      ready = true;
      resend();
    } else if (frame.type === "message") {
      if (frame.from !== "user") { showTyping(false); }
      if (frame.from === "user" && frame.client_id && shown[frame.client_id]) { return; }
      render(frame);
    } else if (frame.type === "typing") {
      showTyping(true);
    } else if (frame.type === "idle") {
      showTyping(false);
    } else if (frame.type === "error") {
      showTyping(false);
      renderError(frame.text);
    }
  }

  function resend() {  // what was written while offline: shown again, then sent
    var waiting = outbox;
    outbox = [];
    waiting.forEach(function (pending) {
      if (pending.shown) { render(pending.shown); }
      send(pending.frame, pending.shown);
    });
  }

  function send(frame, shownAs) {
    if (ready && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
    } else {
      outbox.push({ frame: frame, shown: shownAs });
    }
  }

  function nextId() {
    sequence += 1;
    return "c" + Date.now().toString(36) + "-" + sequence.toString(36);
  }

  function say(text) {
    var id = nextId();
    var mine = { from: "user", text: text, client_id: id };
    render(mine);
    send({ type: "message", text: text, id: id }, mine);
  }

  function press(button, group) {
    disable(group);
    render({ from: "user", text: button.label });
    send({ type: "action", id: button.id }, null);
  }

  function upload(file) {
    var token = loadToken();
    if (!token || !ready) { renderError(t.not_connected); return; }
    render({ from: "user", text: t.uploading + file.name });
    var body = new FormData();
    body.append("session", token);
    body.append("id", nextId());
    body.append("lang", lang);
    body.append("file", file);
    showTyping(true);
    fetch("/webchat/upload", { method: "POST", body: body })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        showTyping(false);
        if (answer.type === "error") { renderError(answer.text); return; }
        (answer.messages || []).forEach(render);
      })
      .catch(function () { showTyping(false); renderError(t.upload_failed); });
  }

  // Wiring -------------------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    if (text.length > MAX_CHARS) { renderError(t.too_long); return; }
    input.value = "";
    say(text);
    input.focus();
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });

  fileInput.addEventListener("change", function () {
    if (fileInput.files && fileInput.files[0]) { upload(fileInput.files[0]); }
    fileInput.value = "";
  });

  function closeWidget() {  // the widget (our parent page) hides its frame
    window.parent.postMessage({ type: "p2pdesk:close" }, "*");
  }

  if (embedded) {
    var closeButton = document.getElementById("chat-close");
    closeButton.hidden = false;
    closeButton.addEventListener("click", closeWidget);
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { closeWidget(); }
    });
  }

  applyStrings();
  connect();
  if (embedded) { input.focus(); }
}());

/* The web chat on any page, with one tag:
     <script src="https://chat.example.com/widget.js" async></script>
   A button in the corner opens the chat (this server's page, ?embed=1) in a frame. The page's
   own utm_source / utm_campaign / ref go along for attribution. Optional: data-lang="en". */
(function () {
  "use strict";
  if (window.P2P_CHAT_WIDGET) { return; }
  window.P2P_CHAT_WIDGET = true;

  var script = document.currentScript;
  var origin = new URL(script ? script.src : "/widget.js", window.location.href).origin;
  var tag = (script && script.getAttribute("data-lang")) || navigator.language || "";
  var lang = /^en/i.test(tag) ? "en" : "zh-CN";

  function withStrings(then) {
    if (window.P2P_CHAT_STRINGS) { then(window.P2P_CHAT_STRINGS[lang]); return; }
    var loader = document.createElement("script");
    loader.src = origin + "/webchat/static/strings.js";
    loader.async = true;
    loader.addEventListener("load", function () { then(window.P2P_CHAT_STRINGS[lang]); });
    document.head.appendChild(loader);
  }

  function frameUrl() {
    var params = new URLSearchParams({ embed: "1", lang: lang });
    var page = new URLSearchParams(window.location.search);
    ["utm_source", "utm_campaign", "ref"].forEach(function (name) {
      if (page.get(name)) { params.set(name, page.get(name)); }
    });
    return origin + "/?" + params.toString();
  }

  function style(node, rules) {  // CSSOM, which a page's CSP without 'unsafe-inline' allows
    Object.keys(rules).forEach(function (name) { node.style[name] = rules[name]; });
  }

  function build(t) {
    var button = document.createElement("button");
    var frame = null;
    button.type = "button";
    button.textContent = t.open;
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", "p2pdesk-chat-frame");
    style(button, {
      position: "fixed", right: "20px", bottom: "20px", zIndex: "2147483000",
      padding: "12px 18px", border: "0", borderRadius: "24px", background: "#0b5cad",
      color: "#fff", font: "600 16px system-ui, sans-serif", cursor: "pointer",
      boxShadow: "0 4px 12px rgba(0,0,0,.25)"
    });

    function place() {
      var small = window.matchMedia("(max-width: 600px)").matches;
      style(frame, small
        ? { right: "0", bottom: "0", width: "100%", height: "100%", borderRadius: "0" }
        : { right: "20px", bottom: "80px", width: "380px", height: "min(600px, 80vh)",
            borderRadius: "12px" });
    }

    function open() {
      if (!frame) {
        frame = document.createElement("iframe");
        frame.id = "p2pdesk-chat-frame";
        frame.title = t.frame_title;
        frame.src = frameUrl();
        frame.setAttribute("allow", "clipboard-write");
        style(frame, {
          position: "fixed", zIndex: "2147483001", border: "0", background: "#fff",
          boxShadow: "0 8px 28px rgba(0,0,0,.3)"
        });
        document.body.appendChild(frame);
        window.addEventListener("resize", place);
      }
      place();
      frame.hidden = false;
      button.setAttribute("aria-expanded", "true");
      button.textContent = t.close;
      style(button, { display: window.matchMedia("(max-width: 600px)").matches ? "none" : "" });
      frame.focus();
    }

    function close() {
      if (frame) { frame.hidden = true; }
      button.setAttribute("aria-expanded", "false");
      button.textContent = t.open;
      style(button, { display: "" });
      button.focus();
    }

    button.addEventListener("click", function () {
      if (frame && !frame.hidden) { close(); } else { open(); }
    });
    window.addEventListener("message", function (event) {  // Escape inside the chat
      if (event.origin === origin && event.data && event.data.type === "p2pdesk:close") {
        close();
      }
    });
    document.body.appendChild(button);
  }

  function start() { withStrings(build); }
  if (document.body) { start(); } else { document.addEventListener("DOMContentLoaded", start); }
}());

/* Every text of the chat page and the widget, in zh-CN and en (same keys). Texts from the
   server (the bot, agents, errors) come already localized. */
window.P2P_CHAT_STRINGS = {
  "zh-CN": {
    title: "P2P Desk 在线客服",
    input_label: "输入消息",
    placeholder: "请输入您的问题…",
    send: "发送",
    attach: "上传文件（身份证照片等，JPG/PNG/PDF）",
    connecting: "正在连接…",
    reconnecting: "连接已断开，正在重新连接…",
    typing: "正在输入…",
    you: "我",
    bot: "智能助手",
    agent: "客服",
    system: "系统消息",
    error: "提示",
    uploading: "正在上传文件：",
    upload_failed: "上传失败，请稍后重试。",
    not_connected: "尚未连接，请稍后再上传。",
    too_long: "消息太长了（最多 4000 个字），请分几条发送。",
    open: "在线咨询",
    close: "关闭在线咨询",
    frame_title: "P2P Desk 在线客服对话"
  },
  "en": {
    title: "P2P Desk chat",
    input_label: "Your message",
    placeholder: "Type your question…",
    send: "Send",
    attach: "Upload a file (ID photo etc., JPG/PNG/PDF)",
    connecting: "Connecting…",
    reconnecting: "Connection lost, reconnecting…",
    typing: "Typing…",
    you: "You",
    bot: "Assistant",
    agent: "Agent",
    system: "Notice",
    error: "Note",
    uploading: "Uploading ",
    upload_failed: "The upload failed; please try again later.",
    not_connected: "Not connected yet; please upload again in a moment.",
    too_long: "That message is too long (at most 4,000 characters); please split it up.",
    open: "Chat with us",
    close: "Close the chat",
    frame_title: "P2P Desk chat window"
  }
};

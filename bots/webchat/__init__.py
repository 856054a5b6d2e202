"""The web chat: the customer's second channel beside Telegram (a page, an embeddable widget,
a WebSocket and an upload route). ``docs/webchat.md`` describes the protocol."""

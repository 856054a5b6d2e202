"""The Telegram adapter: python-telegram-bot handlers over the dialog engine.

python-telegram-bot 22 reports ``RetryAfter.retry_after`` as a ``timedelta`` when
``PTB_TIMEDELTA`` is set, and warns (deprecation) on every 429 otherwise; we take the new
behaviour, which the next major version makes the only one.
"""

import os

os.environ.setdefault("PTB_TIMEDELTA", "true")

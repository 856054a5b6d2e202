"""The agent console: the human queue and conversations taken over from the bot."""

"""Staff web pages: sign-in, sessions and the pages behind them (console, manager views)."""

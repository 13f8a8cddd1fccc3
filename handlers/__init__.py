"""The Telegram adapter: parse an update, call one use case, render the reply."""

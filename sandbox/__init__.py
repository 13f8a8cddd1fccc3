"""``contest-bot sandbox``: the real bot on the built-in fake Bot API, with a web chat page.

A rehearsal without Telegram: personas chat with the bot in a browser, the sandbox's clock
can be moved forward. A tool of its own: nothing in the product imports it.
"""

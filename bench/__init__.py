"""The benchmark (``contest-bot bench``): the bot as it runs, against the fake Bot API
server, beside a no-op python-telegram-bot bot, plus the data sections. A tool of its own:
the product does not import it (the command line finds it through an entry point)."""

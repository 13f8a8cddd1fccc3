"""What people see, channel-neutral: Vietnamese texts in a small markup, menus of choices,
replies, the organisers' console router and the notices the outbox sends.

Adapters render these per channel: Telegram shows the markup as HTML and menus as inline
buttons (``handlers/``); a text-only channel shows plain text and numbered choices. Nothing
here imports a messaging library.
"""

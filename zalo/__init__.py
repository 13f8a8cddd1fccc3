"""The Zalo channel: the same contest, served by the same use cases, as text dialogues
(Zalo's bot platform has no buttons, no edits and no contact sharing)."""

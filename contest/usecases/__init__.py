"""The use cases of the contest, one module per capability. They speak no Telegram and no
Zalo: the channel adapters call them and render what they return.

* ``registration``: the registration conversation and the profile;
* ``exams``: attempts (status, start, answers, deadlines, warnings);
* ``results``: a person's results, the ranking, round-2 qualification;
* ``outbox``: the durable notifications (claim, sent, retried, ended);
* ``console``: the organisers' tools (imports, and what the console issue adds).

``contest.services.ContestService`` puts them together over one shared ``Context``.
"""

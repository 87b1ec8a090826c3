"""Settings every test shares.

Hypothesis's per-example deadline is off: it is a timing assertion, and on a loaded 2-core
machine a correct parser can take longer than 200 ms on one example. The examples themselves,
and their count, stay as each test sets them."""

from hypothesis import settings

settings.register_profile("parley", deadline=None)
settings.load_profile("parley")

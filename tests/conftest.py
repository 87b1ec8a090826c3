"""Settings every test shares.

Hypothesis's per-example deadline is off: it is a timing assertion, and on a loaded 2-core
machine a correct parser can take longer than 200 ms on one example. Its `too_slow` health check
(generating the examples took over a second or so) is a timing assertion too, so it is off as
well; a test that sets its own suppress_health_check list names it again. The examples
themselves, and their count, stay as each test sets them."""

from hypothesis import HealthCheck, settings

settings.register_profile("parley", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("parley")

"""Benchmarks: `python -m bench [delivery|autopay|updates|all]` (or `make bench`).

They print figures and assert nothing; they are not part of the test suite. All traffic goes to
servers on 127.0.0.1 that the benchmarks start themselves (a fake Bot API, the city sandbox) and
to the PostgreSQL / Redis named by TEST_DATABASE_URL / TEST_REDIS_URL.
"""

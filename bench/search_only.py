"""`make bench-search`: section 3b of `make bench` alone (about a minute).

The same rows as the full run (the bench user's 10 / 1,000 / 10,000 / branchy
10,000-message conversations beside the searcher's 10,000 messages), the same
Daphne process (PostgreSQL, Redis layer), the same rounds of `GET
/chat/search/?q=…` interleaved with `GET /chat/`, and the trivial GET of that
process as the yardstick. Prints the figures; writes nothing.
"""

import json

from bench import run
from bench.stats import ratio, summary_ms


def main():
    run.ensure_services()
    run.fresh_database()
    run.setup_django()
    user = run.make_user("bench")
    for size in (10, 1000, 10000):
        run.make_conversation(user, size)
    run.make_conversation(user, 10000, branchy=True)
    searcher = run.make_user("searcher")
    run.make_search_corpus(searcher)
    run.analyze()
    with run.server(REDIS_URL=run.REDIS_URL) as srv:
        trivial = summary_ms(run.trivial_get_latency(srv.base_url))
        found = run.search_latency(srv.base_url, run.session_cookie(searcher))
    lists = summary_ms(found.pop("list page"))
    results = {
        "trivial_get_ms": trivial,
        "list_page_ms": lists,
        "search": {
            word: {
                **summary_ms(times),
                "queries": run.query_count(searcher, "/chat/search/", {"q": word}),
            }
            for word, times in found.items()
        },
    }
    for figures in results["search"].values():
        figures["ratio_to_trivial"] = ratio(figures["p50"], trivial["p50"])
        figures["ratio_to_list_page"] = ratio(figures["p50"], lists["p50"])
    run.log(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
